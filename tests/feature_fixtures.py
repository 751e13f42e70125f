"""Random-weight stand-ins for pretrained feature extractors, saved in the formats the real loaders read."""

from __future__ import annotations

from pathlib import Path


def save_random_inception_torchscript(folder: Path, seed: int = 0) -> Path:
    """A TorchScript with clean-fid's interface (``layers``: image -> 2048-d pool, ``output``: 2048 ->
    1008 logits) and the Inception-v3 architecture (torchvision's, random weights), saved under the
    file name clean-fid loads."""
    import torch
    from torch import nn
    from torchvision.models import inception_v3

    torch.manual_seed(seed)
    net = inception_v3(weights=None, aux_logits=False, init_weights=True)
    # calibrate the batch-norm statistics on random images so activations neither vanish nor explode
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
            m.reset_running_stats()
    net.train()
    with torch.no_grad():
        net(torch.rand(4, 3, 299, 299) * 2 - 1)
    net.eval()
    names = [
        "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2",
        "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
        "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool",
    ]  # fmt: skip

    class StandIn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.Sequential(*[getattr(net, n) for n in names])
            self.output = nn.Linear(2048, 1008)

        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            features = self.layers(x).flatten(1)
            return features if return_features else torch.softmax(self.output(features), dim=1)

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "inception-2015-12-05.pt"
    torch.jit.script(StandIn().eval()).save(str(path))
    return folder


def save_random_open_clip(path: Path, arch: str = "ViT-B-32", seed: int = 0) -> Path:
    """An open_clip model of ``arch`` with random weights, saved as safetensors (a local 'pretrained')."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = open_clip.create_model(arch, pretrained=None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path
