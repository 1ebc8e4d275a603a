"""Fine-tuning from the window: controller, the `segstudio train` child process, dialog, summary, dock."""
