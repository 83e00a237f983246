"""bitnet trainer: PyTorch binarized models for audio, exported to the engine's file format.

This package (and only this package) imports torch. Entry points:

* ``python -m trainer train --data fsdd --split official --model digits --out runs/NAME``
* ``python -m trainer export runs/NAME --out model.bnn``
* ``trainer.models.build(name, n_classes=10, float_twin=False)``
* ``trainer.train.train(TrainConfig(...))``, ``trainer.export.export_run(run_dir, out)``
"""

__all__ = ["layers", "models", "data", "train", "export"]
