"""The bundled miniature's build recipe: stage 1 (VAE and base UNet on random motion), the
instructed training set, and stage 2 (AID through the shared trainer). See ``train_all``."""
