"""The official model in PyTorch, as the tests, the benchmarks and conversion checks build it:
transformers' `SwiftFormerForImageClassification` running the official current-release
attention, and the same network with multi-head self-attention instead (for the benchmarks).

transformers' port implements the first official release (softmax over a singleton axis); its
attention modules get the current release's forward (`models/swiftformer.py` since
2023-07-26: `F.normalize` over the tokens), exactly as the official code writes it, broadcast
`repeat` included, so the baseline costs what the official model costs.
"""

import copy
import types

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from transformers import SwiftFormerConfig, SwiftFormerForImageClassification
from transformers.models.swiftformer.modeling_swiftformer import SwiftFormerEfficientAdditiveAttention

from keras_swiftformer.variants import get_variant


def current_release_attention(self, x):
    query = F.normalize(self.to_query(x), dim=-1)
    key = F.normalize(self.to_key(x), dim=-1)
    weights = (query @ self.w_g) * self.scale_factor
    weights = F.normalize(weights, dim=1)
    global_query = torch.sum(weights * query, dim=1)
    global_query = global_query.unsqueeze(1).repeat(1, key.shape[1], 1)
    return self.final(self.proj(global_query * key) + query)


def multi_head_self_attention(self, x):
    """Standard softmax attention over all tokens (heads of about 32 channels), in place of the
    additive attention: quadratic in the number of tokens. Uses PyTorch's fused
    scaled_dot_product_attention, so memory stays linear and only time shows the cost."""
    batch, tokens, channels = x.shape
    heads = max(h for h in range(1, max(1, channels // 32) + 1) if channels % h == 0)

    def split(t):
        return t.reshape(batch, tokens, heads, channels // heads).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(self.to_query(x)), split(self.to_key(x)), split(self.to_value(x)))
    return self.final(self.proj(out.transpose(1, 2).reshape(batch, tokens, channels)))


def official_swiftformer(variant, attention="additive", classes=1000):
    """transformers' SwiftFormer in eval mode with the official attention ("additive") or
    multi-head self-attention ("mhsa")."""
    _, spec = get_variant(variant)
    config = SwiftFormerConfig(depths=list(spec["depths"]), embed_dims=list(spec["widths"]), num_labels=classes)
    model = SwiftFormerForImageClassification(config).eval()
    for module in model.modules():
        if isinstance(module, SwiftFormerEfficientAdditiveAttention):
            if attention == "mhsa":
                dim = module.to_query.in_features
                module.to_value = torch.nn.Linear(dim, dim)
                module.forward = types.MethodType(multi_head_self_attention, module)
            else:
                module.forward = types.MethodType(current_release_attention, module)
    return model.eval()


def count_gmacs(model, size=224):
    """Multiply-accumulates of one image, counted by PyTorch's FlopCounterMode (2 FLOPs per
    MAC: convolutions, linear layers and matrix products; elementwise ops are not counted,
    as in the paper's figures)."""
    counter = FlopCounterMode(display=False)
    # On the meta device: shapes only, so counting self-attention at 1024x1024 costs nothing.
    shadow = copy.deepcopy(model).to("meta")
    with torch.no_grad(), counter:
        shadow(torch.zeros(1, 3, size, size, device="meta"))
    return counter.get_total_flops() / 2 / 1e9
