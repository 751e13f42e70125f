"""Reconstruction scorers: from images to per-image feature vectors, with their cost in network calls.

- ``diffusion-loss`` (:class:`DiffusionLossScorer`): the noise-prediction error at K fixed timesteps with
  fixed noise (seeded draws per timestep, the same for every image), all K timesteps of an image in ONE
  batched forward. Weighted by the DDPM ELBO weight (Ho et al. 2020, eq. 12 with sigma_t^2 = beta_t:
  beta_t / (2 alpha_t (1 - alphabar_t))) or unweighted. Features: the K per-timestep errors (kept as a
  vector, not summed) and, from the same forward, the K mean squared predicted noises. NFEs per image:
  K (times the noise draws per timestep, 1 by default). With ``classes``, class-conditional models also
  give their class evidence (two more forwards; see the class's docstring). With ``noise_sets`` M, all of
  it M times over independent fixed noise, side by side: the detector fits one block per set and averages
  them (:class:`detectors.detector.ReconstructionDetector`'s ``blocks``), which on the digits DDPM beats
  a larger K at the same cost (K = 16 x 4 sets: 0.950 on average; K = 32 x 2: 0.948).
- ``inversion`` (:class:`InversionScorer`): DIRE-style deterministic DDIM inversion of x0 to the last
  timestep in S steps, then DDIM reconstruction in S steps; the feature is the mean absolute residual
  between the image and its reconstruction (in pixels). NFEs per image: 2 S.
- ``autoencoder`` (:class:`AutoencoderScorer`): AEROBLADE-style distance between an image and its
  reconstruction through the latent model's VAE (mean squared error in pixels; AEROBLADE's LPIPS needs
  VGG weights that do not ship offline). No UNet evaluation; only latent models have one.

Errors are per-element means, so images of any size give comparable numbers. The direction (does the
model reconstruct its own images better or worse than real ones?) is not assumed here: the detector
learns it when it is calibrated.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from audit.errors import InputError
from detectors.noise_model import NoiseModel, resized

WEIGHTINGS = ("elbo", "none")


SPACINGS = ("log", "even")


def loss_timesteps(k: int, num_train_timesteps: int, spacing: str = "log") -> list[int]:
    """K distinct timesteps: ``log``, geometric from 1 to 0.6 T (most of them at low noise, where a
    model's error separates its own samples from real images best: on the digits DDPM at K = 8, AUROC
    0.85 against 0.69 for even spacing); ``even``, the centres of K equal bins of [0, T)."""
    if not 1 <= k <= num_train_timesteps // 2:
        raise InputError(f"K must be between 1 and {num_train_timesteps // 2}, got {k}")
    if spacing == "even":
        return [int((i + 0.5) * num_train_timesteps / k) for i in range(k)]
    if spacing != "log":
        raise InputError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    ts: list[int] = []
    for t in np.geomspace(1, 0.6 * num_train_timesteps, k):
        ts.append(max(round(float(t)), ts[-1] + 1 if ts else 1))
    return ts


def elbo_weights(alphas_cumprod: np.ndarray, timesteps: list[int]) -> np.ndarray:
    """The DDPM loss weight beta_t^2 / (2 sigma_t^2 alpha_t (1 - alphabar_t)) with sigma_t^2 = beta_t."""
    ab = np.asarray(alphas_cumprod, dtype=np.float64)
    prev = np.concatenate([[1.0], ab[:-1]])
    alpha = ab / prev
    beta = 1.0 - alpha
    t = np.asarray(timesteps)
    return beta[t] / (2.0 * alpha[t] * (1.0 - ab[t]))


def class_search_timesteps(timesteps: list[int]) -> list[int]:
    """Where the class evidence looks for an image's best class: every other timestep of the upper (noisier)
    half of the K timesteps, where the class shapes the prediction most (on the digits DDPM at K = 32 the
    detector's AUROC is the same as with a search over all K, 0.946 averaged over three noise seeds, at a
    quarter of the cost)."""
    return timesteps[len(timesteps) // 2 :: 2]


@dataclass
class DiffusionLossScorer:
    """Noise-prediction errors at K timesteps (see the module docstring); with ``with_norms`` also the
    mean squared predicted noise at each timestep, which the same forward pass gives for free.

    With ``classes`` (class-conditional models only), also the model's class evidence, the "diffusion
    classifier" of Li et al. (2023): the errors under every class at the search timesteps
    (:func:`class_search_timesteps`), kept per class and timestep as well as summed and sorted, and for
    the best-fitting class (lowest summed error) its errors and norms at all K timesteps and the guidance
    direction ``mean (eps_class - eps_null)^2``. Guided sampling leaves its mark there: a generated image
    fits its class unusually well. Keeping each class's errors (not only the sorted sums) lets the
    detector learn that some digits are simply easier to fit than others: on the digits DDPM it raises
    the AUROC in all of 2 noise seeds x 5 splits, by 0.004 on average, at no extra network evaluation."""

    k: int = 8
    weighting: str = "elbo"
    spacing: str = "log"
    n_noise: int = 1  # noise draws per timestep, errors averaged: NFEs per image = k * n_noise
    noise_sets: int = 1  # independent sets of fixed noise, features side by side (one detector block each)
    with_norms: bool = True
    classes: bool = False
    seed: int = 0
    batch_size: int = 512  # network inputs per forward
    name: str = field(default="diffusion-loss", init=False)

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise InputError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if self.n_noise < 1:
            raise InputError(f"n_noise must be at least 1, got {self.n_noise}")
        if self.noise_sets < 1:
            raise InputError(f"noise_sets must be at least 1, got {self.noise_sets}")

    def config(self) -> dict[str, Any]:
        return asdict(self)

    def _num_classes(self, model: NoiseModel | None) -> int:
        if not self.classes:
            return 0
        if model is None:
            raise InputError("the class evidence's cost depends on the model: pass the model")
        classes = int(getattr(model, "num_classes", 0) or 0)
        if classes < 2:
            raise InputError(
                f"{model.id} is not class-conditional, so the class evidence (classes=True) does not apply"
            )
        return classes

    def nfe_per_image(self, model: NoiseModel | None = None) -> int:
        """K x draws for the null class; with ``classes``, plus every class at the search timesteps and the
        best class at all K timesteps; all of it once per noise set."""
        nfe = self.k * self.n_noise
        classes = self._num_classes(model)
        if classes:
            search = len(class_search_timesteps(list(range(self.k))))
            nfe += classes * search * self.n_noise + self.k * self.n_noise
        return nfe * self.noise_sets

    def reference_columns(self) -> int:
        """How many leading columns of each noise set's block are the null class's (K errors, K norms): the
        features the real-reference score models (:mod:`detectors.reference`), the class evidence left out."""
        return self.k * (2 if self.with_norms else 1)

    def noise_set(self, m: int) -> DiffusionLossScorer:
        """The one-set scorer of noise set ``m``: its draws take the seeds after those of set ``m - 1``
        (set 0 is this scorer's own seeds), so the sets never share a draw."""
        return replace(self, noise_sets=1, seed=self.seed + m * self.k * self.n_noise)

    def timesteps(self, model: NoiseModel) -> list[int]:
        return loss_timesteps(self.k, len(model.alphas_cumprod), self.spacing)

    def feature_names(self, model: NoiseModel) -> list[str]:
        if self.noise_sets > 1:
            one = self.noise_set(0).feature_names(model)
            return [f"{name} [noise set {m + 1}]" for m in range(self.noise_sets) for name in one]
        ts = self.timesteps(model)
        names = [f"error t={t}" for t in ts] + ([f"predicted-noise norm t={t}" for t in ts] if self.with_norms else [])
        classes = self._num_classes(model)
        if classes:
            names += [f"best-class error t={t}" for t in ts]
            names += [f"best-class predicted-noise norm t={t}" for t in ts] if self.with_norms else []
            names += [f"guidance direction t={t}" for t in ts]
            names += [f"class search error, rank {r + 1}" for r in range(classes)]
            searched = class_search_timesteps(ts)
            names += [f"class {c} error t={t}" for c in range(classes) for t in searched]
        return names

    def features(self, model: NoiseModel, images: np.ndarray) -> np.ndarray:
        """(N, F): the K errors (column k at timestep t_k), then the K predicted-noise norms with
        ``with_norms``, then with ``classes`` the best class's K errors (and K norms), the K guidance
        directions, the classes' summed search errors, smallest first, and every class's error at every
        search timestep (class 0's first, timesteps ascending). With ``noise_sets`` M > 1, M such blocks
        side by side, one per noise set (:meth:`noise_set`)."""
        import torch

        if self.noise_sets > 1:
            return np.concatenate([self.noise_set(m).features(model, images) for m in range(self.noise_sets)], 1)

        timesteps = self.timesteps(model)
        classes = self._num_classes(model)
        weights = elbo_weights(model.alphas_cumprod, timesteps) if self.weighting == "elbo" else np.ones(self.k)
        m, draws = self.n_noise, self.k * self.n_noise
        searched = set(class_search_timesteps(timesteps))
        search = [i for i, t in enumerate(timesteps) if t in searched]
        ab = torch.tensor(np.repeat(model.alphas_cumprod[timesteps], m))
        t_all = torch.tensor(np.repeat(timesteps, m))
        draw_idx = torch.tensor([i * m + j for i in search for j in range(m)])  # the search draws
        out = []
        noise = None
        inputs_per_image = self.nfe_per_image(model)
        per_batch = max(1, self.batch_size // inputs_per_image)
        for start in range(0, len(images), per_batch):
            with torch.no_grad():
                x0 = model.encode(images[start : start + per_batch])
                n, shape = len(x0), x0.shape[1:]
                if noise is None:  # fixed noise draws (one seed per timestep and draw), shared by every image
                    gens = [torch.Generator().manual_seed(self.seed + i) for i in range(draws)]
                    noise = torch.stack([torch.randn(shape, generator=g) for g in gens])
                eps = noise.to(x0.device, x0.dtype)[None].expand(n, *noise.shape)  # (n, K*M, C, h, w)
                a = ab.to(x0.device, x0.dtype).view(1, draws, *([1] * len(shape)))
                xt = a.sqrt() * x0[:, None] + (1 - a).sqrt() * eps  # (n, K*M, C, h, w)
                t = t_all.to(x0.device)
                pred = model.eps(xt.reshape(n * draws, *shape), t.repeat(n)).reshape(n, draws, *shape).float()
                cols = self._error_columns(pred, eps, weights, n)
                if classes:
                    cols += self._class_columns(model, xt, eps, pred, t, draw_idx, classes, weights, n)
            out.append(np.concatenate(cols, axis=1))
        return np.concatenate(out) if out else np.zeros((0, len(self.feature_names(model))))

    def _per_timestep(self, values: Any, n: int) -> np.ndarray:
        """(n, K*M) per-draw values -> (n, K) means over each timestep's draws, float64."""
        return values.reshape(n, self.k, self.n_noise).mean(-1).double().cpu().numpy()

    def _error_columns(self, pred: Any, eps: Any, weights: np.ndarray, n: int) -> list[np.ndarray]:
        cols = [self._per_timestep(((pred - eps.float()) ** 2).flatten(2).mean(-1), n) * weights]
        if self.with_norms:
            cols.append(self._per_timestep((pred**2).flatten(2).mean(-1), n))
        return cols

    def _class_columns(
        self, model: NoiseModel, xt: Any, eps: Any, null: Any, t: Any, draw_idx: Any, classes: int,
        weights: np.ndarray, n: int,
    ) -> list[np.ndarray]:  # fmt: skip
        """Every class at the search draws (one forward), then the best class at all draws (another)."""
        import torch

        shape, s = xt.shape[2:], len(draw_idx)
        x_search = xt[:, draw_idx].reshape(1, n * s, *shape).expand(classes, -1, *shape).reshape(-1, *shape)
        t_search = t[draw_idx].repeat(n * classes)
        labels = torch.arange(classes, device=xt.device).repeat_interleave(n * s)
        pred = model.eps(x_search, t_search, labels).reshape(classes, n, s, *shape).float()
        per_draw = ((pred - eps[:, draw_idx].float()[None]) ** 2).flatten(3).mean(-1)  # (classes, n, s)
        search_err = per_draw.sum(-1)  # (classes, n)
        best = search_err.argmin(0)  # (n,)
        draws = xt.shape[1]
        labels = best.repeat_interleave(draws).to(xt.device)
        pred_best = model.eps(xt.reshape(n * draws, *shape), t.repeat(n), labels).reshape(n, draws, *shape).float()
        cols = self._error_columns(pred_best, eps, weights, n)
        cols.append(self._per_timestep(((pred_best - null) ** 2).flatten(2).mean(-1), n))
        cols.append(search_err.T.sort(dim=1).values.double().cpu().numpy())
        per_class = per_draw.reshape(classes, n, s // self.n_noise, self.n_noise).mean(-1)  # (classes, n, search)
        cols.append(per_class.permute(1, 0, 2).reshape(n, -1).double().cpu().numpy())
        return cols


def ddim_timesteps(steps: int, num_train_timesteps: int) -> list[int]:
    """S timesteps from low noise to high, spaced evenly (diffusers' "leading" spacing, ascending)."""
    if not 1 <= steps <= num_train_timesteps:
        raise InputError(f"steps must be between 1 and {num_train_timesteps}, got {steps}")
    stride = num_train_timesteps // steps
    return [i * stride for i in range(steps)]


@dataclass
class InversionScorer:
    steps: int = 20
    batch_size: int = 64
    name: str = field(default="inversion", init=False)

    def config(self) -> dict[str, Any]:
        return asdict(self)

    def nfe_per_image(self, model: NoiseModel | None = None) -> int:
        return 2 * self.steps

    def _ddim(self, model: NoiseModel, x: Any, path: list[int]) -> Any:
        """Deterministic DDIM (eta = 0) along ``path`` (timesteps; -1 is the clean image, alphabar = 1)."""
        import torch

        ab = model.alphas_cumprod
        for current, nxt in itertools.pairwise(path):
            a_cur = 1.0 if current < 0 else float(ab[current])
            a_next = 1.0 if nxt < 0 else float(ab[nxt])
            t = torch.full((len(x),), max(current, 0), dtype=torch.long, device=x.device)
            eps = model.eps(x, t)
            x0 = (x - (1 - a_cur) ** 0.5 * eps) / a_cur**0.5
            x = a_next**0.5 * x0 + (1 - a_next) ** 0.5 * eps
        return x

    def reconstruct(self, model: NoiseModel, images: np.ndarray) -> tuple[Any, Any]:
        """(x0, reconstruction) tensors in the model's space after S inversion and S denoising steps."""
        import torch

        ts = ddim_timesteps(self.steps, len(model.alphas_cumprod))
        with torch.no_grad():
            x0 = model.encode(images)
            # inversion: S steps up from the clean image, eps taken at the lower noise level of each step
            noised = self._ddim(model, x0, [-1, *ts])
            back = self._ddim(model, noised, [*ts[::-1], -1])
        return x0, back

    def features(self, model: NoiseModel, images: np.ndarray) -> np.ndarray:
        """(N, 1) mean absolute residual between each image and its DDIM reconstruction, in pixels [0, 1]."""
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            x0, back = self.reconstruct(model, batch)
            original = model.decode(x0).astype(np.float64) if model.latent else _unit(x0)
            rebuilt = model.decode(back).astype(np.float64) if model.latent else _unit(back)
            scale = 255.0 if model.latent else 1.0
            out.append(np.abs(original - rebuilt).reshape(len(batch), -1).mean(1, keepdims=True) / scale)
        return np.concatenate(out) if out else np.zeros((0, 1))


def _unit(x: Any) -> np.ndarray:
    """Model-space pixels [-1, 1] as float64 in [0, 1] (clipped), without quantising."""
    return ((x.double().cpu().numpy() + 1.0) / 2.0).clip(0.0, 1.0)


@dataclass
class AutoencoderScorer:
    batch_size: int = 16
    name: str = field(default="autoencoder", init=False)

    def config(self) -> dict[str, Any]:
        return asdict(self)

    def nfe_per_image(self, model: NoiseModel | None = None) -> int:
        return 0

    def features(self, model: NoiseModel, images: np.ndarray) -> np.ndarray:
        """(N, 1) mean squared error in [0, 1] pixels between each image and its VAE reconstruction."""
        if not model.latent:
            raise InputError(f"{model.id} works in pixel space: it has no autoencoder to reconstruct through")
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = np.asarray(images[start : start + self.batch_size])
            rebuilt = model.decode(model.encode(batch)).astype(np.float64) / 255.0
            original = resized(batch, rebuilt.shape[1:3]).astype(np.float64) / 255.0
            out.append(((original - rebuilt) ** 2).reshape(len(batch), -1).mean(1, keepdims=True))
        return np.concatenate(out) if out else np.zeros((0, 1))


SCORERS = {"diffusion-loss": DiffusionLossScorer, "inversion": InversionScorer, "autoencoder": AutoencoderScorer}


def get_scorer(name: str, **params: Any) -> Any:
    if name not in SCORERS:
        raise InputError(f"unknown scorer {name!r}; available: {', '.join(SCORERS)}")
    return SCORERS[name](**params)
