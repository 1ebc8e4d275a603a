"""Fine-tuning: dataset folders in, a new model version out.

`config` (what to train and how, every default once) and `events` (the progress stream and exit codes)
import no torch, so the window and the command line can read them before torch has loaded. `loop` runs a
fine-tune; `data`, `objective`, `evaluate`, `release`, `augment` and `distributed` are its parts.
"""
