"""The PyTorch reference: transformers' SwiftFormer with randomised weights and buffers.

transformers' port implements the first official release (softmax over a singleton axis).
For the current release, each attention module's forward is replaced by the official
formula (`models/swiftformer.py` since 2023-07-26: `F.normalize(A, dim=1)` over the tokens).
"""

import re
import types

import numpy as np
import torch
from transformers import SwiftFormerConfig, SwiftFormerForImageClassification
from transformers.models.swiftformer.modeling_swiftformer import (
    SwiftFormerEfficientAdditiveAttention,
)

from conversion.official_model import current_release_attention  # the official formula


@torch.no_grad()
def randomise(model, seed):
    """Random values for every parameter and buffer, at scales that keep activations O(1).

    Default initialisation hides mistakes (unit BatchNorm statistics, equal layer scales, zero
    biases), so nothing keeps its default.
    """
    generator = torch.Generator().manual_seed(seed)

    def normal(shape, std):
        return torch.randn(shape, generator=generator) * std

    def uniform(shape, low, high):
        return low + (high - low) * torch.rand(shape, generator=generator)

    for _, module in model.named_modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            fan_in = module.weight[0].numel()
            module.weight.copy_(normal(module.weight.shape, fan_in**-0.5))
            module.bias.copy_(normal(module.bias.shape, 0.1))
        elif isinstance(module, torch.nn.BatchNorm2d):
            module.weight.copy_(uniform(module.weight.shape, 0.5, 1.5))
            module.bias.copy_(normal(module.bias.shape, 0.1))
            module.running_mean.copy_(normal(module.running_mean.shape, 0.2))
            module.running_var.copy_(uniform(module.running_var.shape, 0.5, 2.0))
    for name, parameter in model.named_parameters():
        if re.search(r"layer_scale", name):
            parameter.copy_(uniform(parameter.shape, 0.1, 0.6))
        elif name.endswith("w_g"):
            parameter.copy_(normal(parameter.shape, 1.0))


def build_reference(depths, widths, classes=1000, attention_pooling="normalize", seed=0):
    """transformers' SwiftFormerForImageClassification in eval mode, randomised."""
    torch.manual_seed(seed)
    config = SwiftFormerConfig(
        depths=list(depths), embed_dims=list(widths), num_labels=classes
    )
    model = SwiftFormerForImageClassification(config).eval()
    randomise(model, seed)
    if attention_pooling == "normalize":
        for module in model.modules():
            if isinstance(module, SwiftFormerEfficientAdditiveAttention):
                module.forward = types.MethodType(current_release_attention, module)
    elif attention_pooling != "softmax_v1":
        raise ValueError(attention_pooling)
    return model


@torch.no_grad()
def run_reference(model, images_nhwc):
    """Logits and the four stage outputs (NHWC numpy) for NHWC numpy images."""
    pixels = torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)))
    out = model(pixels, output_hidden_states=True, return_dict=True)
    # hidden_states: the stem output, then one entry per network element (stage, downsample,
    # stage, ...): stages are the elements 1, 3, 5, 7.
    stages = [out.hidden_states[i].permute(0, 2, 3, 1).numpy() for i in (1, 3, 5, 7)]
    return out.logits.numpy(), stages


# transformers' key names -> the official ones, written out independently of the library's
# own renaming so the test checks it rather than repeats it.
def official_state_dict(model):
    official = {}
    for key, value in model.state_dict().items():
        new = key.replace("swiftformer.patch_embed.patch_embedding.", "patch_embed.")
        new = re.sub(r"swiftformer\.encoder\.network\.(\d+)\.blocks\.(\d+)\.", r"network.\1.\2.", new)
        new = re.sub(r"swiftformer\.encoder\.network\.(\d+)\.", r"network.\1.", new)
        new = new.replace("depth_wise_conv", "dwconv").replace("point_wise_conv", "pwconv")
        new = new.replace("attn.proj.", "attn.Proj.")
        official[new] = value.clone()
    return official
