"""Fresh AID ≡ SVD on the parity fixture's checkpoint (loaded with ``load_svd``)."""

from __future__ import annotations

import torch

from aid_model.aid import AIDConfig, attach_aid
from aid_model.sampling import VideoCondition, VideoDenoiser
from aid_model.svd import load_svd


@torch.no_grad()
def test_fresh_aid_is_bit_identical_to_svd_on_the_fixture_checkpoint(svd_fixture_checkpoint):
    # Fixture A: 6 frames, 8×8 latents, UNet heads of 16 channels, CLIP with 2 heads.
    components = load_svd(svd_fixture_checkpoint, torch.float32, "cpu", unet_head_channels=16,
                          clip_num_heads=2)
    width = components.unet.config.cross_attention_dim
    frames = 6
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, frames, 4, 8, 8, generator=generator) * 4
    sigma = torch.tensor([0.03, 40.0])
    pixels = torch.randn(2, 3, 28, 28, generator=generator)
    image_embeddings = components.image_encoder(pixel_values=pixels).image_embeds[:, None]
    config = AIDConfig(num_frames=frames, num_states=2, dqformer_heads=2)

    reference = torch.randn(2, 1, 4, 8, 8, generator=generator)
    svd_cond = VideoCondition(
        image_embeddings=image_embeddings,
        concat_latents=reference.repeat(1, frames, 1, 1, 1),  # SVD's conditioning
        added_time_ids=torch.tensor([[6.0, 127.0, 0.02], [11.0, 40.0, 0.0]]),
    )
    svd = VideoDenoiser(components.unet)(x, sigma, svd_cond)

    model = attach_aid(components, config)
    mcondition = model.build_mcondition(
        torch.randn(2, 77, width, generator=generator),
        torch.randn(2, 2 * 77, width, generator=generator),
        model.image_context(pixels),
    )
    aid_cond = VideoCondition(image_embeddings, model.concat_latents(reference),
                              svd_cond.added_time_ids, mcondition)
    aid = VideoDenoiser(model.unet)(x, sigma, aid_cond)
    assert (aid - svd).abs().max().item() == 0.0
