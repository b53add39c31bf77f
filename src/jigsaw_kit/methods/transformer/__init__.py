"""The Hugging Face fine-tune behind `method: transformer`: its options (options.py), the Trainer recipe
(trainer.py), checkpoint kind and head (heads.py), the yes-no head (yes_no.py), loading, LoRA and saving
(modeling.py), batched prediction (predict.py), the Method (method.py)."""
