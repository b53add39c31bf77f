"""The Hugging Face fine-tune behind `method: transformer`: the Trainer recipe (trainer.py), heads,
LoRA and checkpoint loading (modeling.py), batched prediction (predict.py), the Method (method.py)."""
