"""From latent points to procedural generator parameters: what to generate to fill a gap.

For procedural families the catalog knows every asset's generator parameters, so a
regression from latents back to parameters can turn a point in a sparse region into a
concrete new asset. Per family, each shape parameter is predicted from the shape vector (or,
for holes of the geometry space, the geometry vector) and each appearance parameter from the
texture vector: k-nearest-neighbour regression for
continuous parameters (clipped to the range seen), k-NN classification for discrete ones
(integer codes such as the base type). The family itself comes from a k-NN classifier on
the shape vector. Cross-validated quality per parameter (R^2 or accuracy) is reported, so
a proposal's reliability is visible.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.model_selection import KFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

APPEARANCE_PARAMS = ("colour_index", "pattern_index", "frame_index", "pattern_scale")
MIN_FAMILY_ASSETS = 2  # below this a family has nothing to regress from; quality is reported either way


def _is_discrete(v: np.ndarray) -> bool:
    return bool(np.all(np.round(v) == v) and len(np.unique(v)) <= 10)


class ParameterProposer:
    """`fit(shape (n, ds), texture (n, dt), families (n,), params [dict] * n)`, then `propose(shape, texture)`."""

    def __init__(self, n_neighbors: int = 5):
        self.n_neighbors = n_neighbors

    def fit(self, shape: np.ndarray, texture: np.ndarray, families: list[str | None], params: list[dict]) -> "ParameterProposer":
        fam = np.array([f or "" for f in families])
        has = np.array([bool(f) and bool(p) for f, p in zip(families, params)])
        if has.sum() < MIN_FAMILY_ASSETS or len(set(fam[has])) < 1:
            raise ValueError("no procedural assets with generator parameters in this catalog; proposals need them")
        k = min(self.n_neighbors, int(has.sum()))
        self.family_model_ = KNeighborsClassifier(k, weights="distance").fit(shape[has], fam[has])
        self.models_: dict[str, dict[str, tuple]] = {}
        self.quality_: dict[str, dict[str, float]] = {}
        for f in sorted(set(fam[has])):
            sel = np.flatnonzero(has & (fam == f))
            if len(sel) < MIN_FAMILY_ASSETS:
                continue
            keys = sorted(set.intersection(*(set(params[i]) for i in sel)))
            self.models_[f], self.quality_[f] = {}, {}
            for key in keys:
                y = np.array([params[i][key] for i in sel], dtype=np.float64)
                X = texture[sel] if key in APPEARANCE_PARAMS else shape[sel]
                kk = min(self.n_neighbors, len(sel) - 1)
                if len(np.unique(y)) == 1:
                    self.models_[f][key] = ("const", float(y[0]))
                    continue
                discrete = _is_discrete(y)
                model = (KNeighborsClassifier if discrete else KNeighborsRegressor)(kk, weights="distance")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    # Plain folds: a rare discrete value must not make stratified splitting impossible.
                    folds = KFold(min(5, len(sel)), shuffle=True, random_state=0)
                    score = cross_val_score(model, X, y.astype(int) if discrete else y, cv=folds).mean()
                model.fit(X, y.astype(int) if discrete else y)
                self.models_[f][key] = ("model", model, discrete, float(y.min()), float(y.max()))
                self.quality_[f][key] = round(float(score), 3)
        if not self.models_:
            raise ValueError(f"no family has {MIN_FAMILY_ASSETS} assets with generator parameters; proposals need them")
        return self

    def propose(self, shape: np.ndarray, texture: np.ndarray, family: str | None = None) -> dict | None:
        """{"family", "params", "quality"} for one shape vector (ds,) and texture vector (dt,), of
        `family` or else the family nearest to the shape vector; None when that family has too few
        assets to regress from."""
        s, t = np.atleast_2d(shape), np.atleast_2d(texture)
        family = str(family) if family is not None else str(self.family_model_.predict(s)[0])
        if family not in self.models_:
            return None
        params = {}
        for key, m in self.models_[family].items():
            if m[0] == "const":
                params[key] = m[1]
                continue
            _, model, discrete, lo, hi = m
            v = float(model.predict(t if key in APPEARANCE_PARAMS else s)[0])
            params[key] = float(int(v)) if discrete else round(float(np.clip(v, lo, hi)), 4)
        return {"family": family, "params": params, "quality": self.quality_[family]}
