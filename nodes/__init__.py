"""Thin ComfyUI layer: one class per node, each calling one ``aid_model`` function."""
