"""AID's own modules from a weight file, for a host other than diffusers (ComfyUI).

The library attaches AID to diffusers' UNet through attention processors
(``aid_model.aid.model``). Another host attaches the same modules to its own SVD: it reads
them here, under the file's names, and places each beside the attention it belongs to.
Nothing here imports diffusers.

Module names (the file's, minus nothing): for every spatio-temporal transformer ``X`` of
the base UNet (diffusers path, e.g. ``down_blocks.0.attentions.0``),

    unet.base.X.transformer_blocks.i.attn1.processor.spatial_adapter         SA
    unet.base.X.transformer_blocks.i.attn2.processor                         MCondition branch
    unet.base.X.temporal_transformer_blocks.i.attn1.processor.short_term_adapter   STA
    unet.base.X.temporal_transformer_blocks.i.attn1.processor.long_term_adapter    LTA
    dqformer                                                                 DQFormer

The base UNet's own trained tensors (the spatial cross-attentions) are not modules here:
``AIDFile.base_tensors`` gives them for the host's weight patching.
"""

from __future__ import annotations

from torch import Tensor, nn

from aid_model.aid.adapters import (
    LongTermTemporalAdapter,
    ShortTermTemporalAdapter,
    SpatialAdapter,
)
from aid_model.aid.dqformer import DQFormer
from aid_model.aid.mcondition_attention import MConditionBranch
from aid_model.aid.weight_file import BASE_PREFIX, AIDFile, AIDWeightsError

PROCESSOR = ".processor"


class AIDParts(nn.Module):
    """The adapters, MCondition branches and DQFormer of one AID weight file, loaded.

    Attributes:
        config: the file's ``AIDConfig``.
        context_width: d, the UNet's cross-attention width (MCondition, text embeddings).
        image_width: width of the e_v tokens the DQFormer reads (CLIP's projection width).
    """

    def __init__(self, aid_file: AIDFile):
        super().__init__()
        self.config = aid_file.config
        tensors = aid_file.tensors
        self.context_width = _context_width(aid_file)
        dqformer_width = self.config.dqformer_width or self.context_width
        image_in = tensors.get("dqformer.image_in.weight")
        self.image_width = image_in.shape[1] if image_in is not None else dqformer_width
        for name, module in _modules_of(aid_file).items():
            _place(self, name, module)
        if self.config.use_mcondition:
            self.dqformer = DQFormer(self.config, self.context_width, self.image_width)
        own = {name: tensor for name, tensor in tensors.items()
               if not (name.startswith(BASE_PREFIX) and PROCESSOR + "." not in name)}
        try:
            self.load_state_dict(own, strict=True)
        except RuntimeError as error:  # missing, unexpected or misshapen tensors
            raise AIDWeightsError(
                f"{aid_file.path} does not hold the AID modules its config describes: "
                f"{' '.join(str(error).split())[:600]}"
            ) from None
        # Eval mode; requires_grad stays as the library leaves AID's (trainable) parameters:
        # nn.MultiheadAttention takes another kernel when no parameter requires grad, and
        # the two hosts should run the same one.
        self.eval()

    def spatial_adapters(self) -> dict[str, SpatialAdapter]:
        """{diffusers path of a spatial self-attention (``…transformer_blocks.i.attn1``): SA}."""
        return self._by_attention(SpatialAdapter, ".spatial_adapter")

    def short_term_adapters(self) -> dict[str, ShortTermTemporalAdapter]:
        """{diffusers path of a temporal self-attention (``…temporal_transformer_blocks.i
        .attn1``): STA}."""
        return self._by_attention(ShortTermTemporalAdapter, ".short_term_adapter")

    def long_term_adapters(self) -> dict[str, LongTermTemporalAdapter]:
        """{diffusers path of a temporal self-attention: LTA}."""
        return self._by_attention(LongTermTemporalAdapter, ".long_term_adapter")

    def mcondition_branches(self) -> dict[str, MConditionBranch]:
        """{diffusers path of a spatial cross-attention (``…transformer_blocks.i.attn2``):
        its MCondition branch}."""
        return self._by_attention(MConditionBranch, "")

    def build_mcondition(self, instruction_embeddings: Tensor, state_embeddings: Tensor,
                         image_tokens: Tensor) -> Tensor:
        """MCondition (B, T, L, d) from e_t (B, 77, d), e_s (B, S·77, d), e_v (B, M, d_v),
        as ``AIDModel.build_mcondition``."""
        if not self.config.use_mcondition:
            raise ValueError("this AID model has no MCondition (without_mcondition=True)")
        return self.dqformer(instruction_embeddings, state_embeddings, image_tokens)

    def _by_attention(self, kind: type, suffix: str) -> dict[str, nn.Module]:
        found = {}
        for name, module in self.named_modules():
            if isinstance(module, kind) and name.startswith(BASE_PREFIX):
                attention = name[len(BASE_PREFIX): len(name) - len(suffix)]
                found[attention.removesuffix(PROCESSOR)] = module
        return found


def _context_width(aid_file: AIDFile) -> int:
    """d, from the trained cross-attention's key projection (every AID file has one)."""
    for name, tensor in aid_file.base_tensors().items():
        if name.endswith(".attn2.to_k.weight"):
            return tensor.shape[1]
    raise AIDWeightsError(
        f"{aid_file.path} holds no spatial cross-attention (…attn2.to_k.weight): it is not "
        "a complete AID weight file; save it again with save_aid_weights"
    )


def _modules_of(aid_file: AIDFile) -> dict[str, nn.Module]:
    """The AID modules the file's tensors describe, freshly built, by name."""
    config, tensors = aid_file.config, aid_file.tensors
    modules: dict[str, nn.Module] = {}
    for name, tensor in tensors.items():
        if not name.startswith(BASE_PREFIX):
            continue
        if name.endswith(".spatial_adapter.down.weight"):
            hidden, channels = tensor.shape
            modules[name.removesuffix(".down.weight")] = SpatialAdapter(channels, hidden)
        elif name.endswith(".short_term_adapter.down.weight"):
            hidden, channels = tensor.shape
            modules[name.removesuffix(".down.weight")] = ShortTermTemporalAdapter(channels, hidden)
        elif name.endswith(".long_term_adapter.down.weight"):
            hidden, channels = tensor.shape
            modules[name.removesuffix(".down.weight")] = LongTermTemporalAdapter(
                channels, hidden, config.adapter_attention_heads)
        elif name.endswith(".processor.to_k_mcondition.weight"):
            prefix = name.removesuffix("to_k_mcondition.weight")
            inner, context = tensor.shape
            out = tensors[prefix + "to_out_mcondition.weight"].shape[0]
            modules[prefix.removesuffix(".")] = MConditionBranch(
                context, inner, out, key_bias=prefix + "to_k_mcondition.bias" in tensors,
                value_bias=prefix + "to_v_mcondition.bias" in tensors)
    return modules


def _place(root: nn.Module, name: str, module: nn.Module) -> None:
    """Registers ``module`` under the dotted ``name``, creating empty parents on the way."""
    *parents, last = name.split(".")
    node = root
    for part in parents:
        child = node._modules.get(part)
        if child is None:
            child = nn.Module()
            node.add_module(part, child)
        node = child
    node.add_module(last, module)
