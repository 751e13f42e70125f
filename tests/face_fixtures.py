"""Tiny InsightFace-format model packs with random weights, built through torch's ONNX exporter: the same
files and the same loader (insightface's ``FaceAnalysis``) as a real ``buffalo_l``, without the download.

The detector has SCRFD's output layout (scores, box distances and 5 keypoints at strides 8, 16 and 32,
two anchors per position); its weights are random (seeded) with a positive score bias, so it finds some
"faces" on any photo. The gender-age model ignores its input and always answers (female 0.2, male 0.8,
age 0.35): every face must come out perceived male at 80% and 35 years old.
"""

from __future__ import annotations

import warnings
from pathlib import Path

GENDERAGE_OUTPUT = (0.2, 0.8, 0.35)
SCORE_BIAS = -0.3  # with seed 0: two "faces" on t1.jpg, none on the Tom Hanks crop


def save_tiny_insightface_pack(folder: Path, seed: int = 0) -> Path:
    import torch
    from torch import nn

    class TinySCRFD(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, stride=8, padding=1)
            self.down = nn.ModuleList([nn.Conv2d(8, 8, 3, stride=2, padding=1) for _ in range(2)])
            self.cls = nn.ModuleList([nn.Conv2d(8, 2, 1) for _ in range(3)])
            self.reg = nn.ModuleList([nn.Conv2d(8, 8, 1) for _ in range(3)])
            self.kps = nn.ModuleList([nn.Conv2d(8, 20, 1) for _ in range(3)])

        def forward(self, x):
            feats = [torch.relu(self.stem(x))]
            for down in self.down:
                feats.append(torch.relu(down(feats[-1])))
            flat = [
                [head(f).permute(0, 2, 3, 1).reshape(-1, width) for f, head in zip(feats, heads, strict=True)]
                for heads, width in ((self.cls, 2), (self.reg, 8), (self.kps, 20))
            ]
            scores = [torch.sigmoid(s).reshape(-1, 1) for s in flat[0]]
            boxes = [b.reshape(-1, 4).abs() + 1.0 for b in flat[1]]
            kps = [k.reshape(-1, 10) for k in flat[2]]
            return (*scores, *boxes, *kps)

    class ConstantGenderAge(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, stride=2)
            self.fc = nn.Linear(4, 3)
            nn.init.zeros_(self.fc.weight)
            with torch.no_grad():
                self.fc.bias.copy_(torch.tensor(GENDERAGE_OUTPUT))

        def forward(self, x):
            return self.fc(self.conv(x).mean(dim=(2, 3)))

    torch.manual_seed(seed)
    detector = TinySCRFD().eval()
    with torch.no_grad():
        for head in detector.cls:
            head.bias.fill_(SCORE_BIAS)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{kind}_{stride}" for kind in ("score", "bbox", "kps") for stride in (8, 16, 32)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            detector, (torch.zeros(1, 3, 640, 640),), str(folder / "det_tiny.onnx"), dynamo=False,
            input_names=["input.1"], output_names=names, dynamic_axes={"input.1": {2: "h", 3: "w"}},
        )  # fmt: skip
        torch.onnx.export(
            ConstantGenderAge().eval(), (torch.zeros(1, 3, 96, 96),), str(folder / "genderage.onnx"), dynamo=False,
            input_names=["data"], output_names=["fc1"], dynamic_axes={"data": {0: "n"}, "fc1": {0: "n"}},
        )  # fmt: skip
    return folder
