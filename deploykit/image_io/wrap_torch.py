"""The pixel preamble for a PyTorch module: an ``nn.Module`` around it (traced around a TorchScript one).

Imported only when a torch model has an image input (``wrap.for_target``), so torch loads here.
"""

from __future__ import annotations

import torch

from deploykit.image_io.spec import image_geometry


class Preamble(torch.nn.Module):
    """pixels -> ``pixels [channels reversed] * scale + offset`` in the source's layout, then the source."""

    def __init__(self, inner, plans: list, constants: list):
        super().__init__()
        self.inner = inner
        self.plans = plans  # per input: None (not an image) or (reverse, pixel layout, source layout)
        self.scales = torch.nn.ParameterList([torch.nn.Parameter(c[0], requires_grad=False) for c in constants])
        self.offsets = torch.nn.ParameterList([torch.nn.Parameter(c[1], requires_grad=False) for c in constants])

    def forward(self, *inputs):
        prepared, image_index = [], 0
        for value, plan in zip(inputs, self.plans):
            if plan is None:
                prepared.append(value)
                continue
            reverse, pixel_layout, source_layout = plan
            x = value.to(torch.float32)
            if pixel_layout == "NCHW":
                x = x.permute(0, 2, 3, 1)
            if reverse:
                x = x.flip(-1)
            x = x * self.scales[image_index] + self.offsets[image_index]
            image_index += 1
            prepared.append(x.permute(0, 3, 1, 2) if source_layout == "NCHW" else x)
        return self.inner(*prepared)


def wrap(model, images: dict, specs) -> dict:
    from deploykit.loaders.torch_loader import example_tensors

    plans, constants = [], []
    for source, pixels in zip(model.inputs, specs):
        image = images.get(source.name)
        if image is None:
            plans.append(None)
            continue
        scale, offset = image.scale_and_offset()
        reverse = image.color == "BGR" and pixels.dtype == "uint8"  # TFLite takes RGB; Core ML hands over BGR itself
        plans.append((reverse, pixels.layout, image_geometry(source)[3]))
        constants.append((torch.from_numpy(scale).reshape(1, 1, 1, -1), torch.from_numpy(offset).reshape(1, 1, 1, -1)))
    module = Preamble(model.handle["module"], plans, constants)
    module.training = False  # not .eval(): a torch.export module refuses train() / eval(), and is in eval mode already
    if model.handle["torchscript"]:
        module = torch.jit.trace(module, example_tensors(specs), check_trace=False)
    return {**model.handle, "module": module}
