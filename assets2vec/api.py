"""`Catalog`: the Python API over a built catalog (what the CLI, the app and notebooks call).

    from assets2vec import Catalog
    cat = Catalog.open("demo/catalog")
    cat.similar("chair-s0-00000", k=5, space="shape", where="legs=4")
    cat.tag("swivel", {"chair-s0-00000": "yes", ...})

Vectors: "shape" (ds), "texture" (dt) and "joint" (ds + dt) spaces, standardised per
dimension (see `assets2vec.catalog.spaces`); and two spaces decoded from the codes by the
network: "geometry" (64, the shape code's decoded geometry, best for fine shape attributes;
`assets2vec.catalog.geometry`) and "appearance" (216, the colours on the asset's surface,
best for colour; `assets2vec.catalog.appearance`); and "texture_only" (dt, the texture space
less the texture typical of assets shaped alike, for search and tagging by texture alone;
`assets2vec.catalog.texture_only`). Distances are Euclidean in all of them.
The NeRF (for `render`, `swap`, `search_image` and region previews) loads on first use
from the run the catalog was built from.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from assets2vec.catalog import density, latent_map
from assets2vec.catalog.build import LOCK_NAME, index_path, load_vectors
from assets2vec.catalog.csv_input import first_column, open_csv
from assets2vec.catalog.filters import effective_values, filter_rows
from assets2vec.catalog.index import IndexFileError, LatentIndex, RestrictedIndex, gpu_available, vectors_digest
from assets2vec.catalog.proposals import ParameterProposer
from assets2vec.catalog.scene_pool import read_weights, scene_pool
from assets2vec.catalog.spaces import (DECODED_SPACES, FEATURE_SPACES, SPACES, SPARSE_SPACES, STANDARDISED_SPACES, TEXTURE_ONLY,
                                      check_space)
from assets2vec.catalog.store import CatalogError, Store
from assets2vec.catalog.texture_only import NeighbourResidual
from assets2vec.catalog.tagging import CANDIDATES, AttributeClassifier, uncertainty_order
from render_core.artifacts import read_header

if TYPE_CHECKING:
    from assets2vec.photo_fit import MatchRule

MAX_LABELS_BYTES = 16 << 20
# Filtered views kept per catalog: a view of a large subset holds a copy of its vectors, and an app
# user who types filters would otherwise add one per keystroke for the life of the server.
RESTRICTED_CACHE = 16
PHOTO_BANK_GRID = 10  # pixels across the photo bank's renders (a 10 x 10 grid of the framed crop)


class Catalog:
    """A catalog opened for reading and tagging. Open with `Catalog.open(path)`."""

    def __init__(self, path: Path, store: Store, use_gpu: bool | None = None, log=None, device=None):
        from assets2vec.devices import default_device, resolve_device

        self.path = path
        self.store = store
        # where the network runs (rendering, decoding codes, search by photo); FAISS has its own `use_gpu`
        self.device = default_device() if device is None else resolve_device(device)
        self.use_gpu = gpu_available() if use_gpu is None else use_gpu
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        # What the stored vectors were made with, read before them: a build that refits it while this reader
        # is open is then seen at query time (a clear "open it again"), not mixed with the old vectors.
        self._checked_version = store.data_version()  # asked first: a commit after it is seen at query time
        self._opened_version = self._checked_version  # the database state these vectors were read at
        with store.read():  # one snapshot: a build committing meanwhile cannot pair these ids with other vectors
            self._fit_digest = store.meta_digest("geometry_pca", "transform")
            self.rows, self._vectors, self.transform = load_vectors(store, self._fit_digest)
            self.ids = store.ids()
            texture_only = store.get_meta(TEXTURE_ONLY) if TEXTURE_ONLY in self._vectors else None
        self._pos = {int(r): i for i, r in enumerate(self.rows)}
        self._where_is: dict[str, int] | None = None  # asset id -> position, built by the first search by id
        self._indexes: dict[str, LatentIndex] = {}
        # Filtered views, most recently used last; emptied when the database changes (tags and predictions
        # decide which assets a filter keeps), by this reader or by another process.
        self._restricted: OrderedDict[tuple[str, str, float], RestrictedIndex] = OrderedDict()
        self._restricted_stamp = store.change_stamp()
        self._restricted_lock = threading.Lock()  # the app's sessions share one catalog, each in its own thread
        self._model = None
        self._run: str | None = None
        self._bank = None  # the run's inversion bank, loaded (or built) by the first image search
        self._encoder = None  # the run's photo encoder, read by the first image search (False: it has none)
        self._encoder_path: Path | None = None  # where the run keeps it (set with the model)
        self._segmenter = None  # the run's photo segmenter, read by the first image search (False: it has none)
        self._segmenter_path: Path | None = None
        self._geometry_pca = None  # read by the first query that needs codes in the geometry space
        self._texture_only = NeighbourResidual.from_json(texture_only) if texture_only is not None else None

    @classmethod
    def open(cls, path: str | os.PathLike, *, use_gpu: bool | None = None, log=None, device=None) -> "Catalog":
        """Open a built catalog. `use_gpu`: None puts flat indexes on the GPU when FAISS has one. `device`: where
        the network runs ("auto", "cpu", "cuda", "cuda:N" or a torch.device; None: `ASSETS2VEC_DEVICE`, else auto)."""
        path = Path(path)
        try:
            read_header(path, "catalog")
        except ValueError as exc:
            raise CatalogError(f"{exc}; build one with 'assets2vec catalog build RUN {path}'") from exc
        return cls(path, Store.open(path), use_gpu, log, device)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.ids)

    # -- vectors and indexes ----------------------------------------------------------------------
    @property
    def spaces(self) -> tuple[str, ...]:
        """The spaces this catalog holds vectors for (the decoded ones only when it was built with them)."""
        return tuple(s for s in FEATURE_SPACES if s in self._vectors)

    def vectors(self, space: str = "joint") -> np.ndarray:
        """(n, d) float32 vectors of every asset in `space`, rows in `self.ids` order."""
        return self._vectors[self._feature_space(space)]

    def _feature_space(self, space: str) -> str:
        check_space(space, FEATURE_SPACES)
        if space not in self._vectors:
            raise CatalogError(f"{self.path}: this catalog has no {space} vectors (built with --no-decoded, or before they "
                               f"existed); rebuild it with 'assets2vec catalog build RUN {self.path}'")
        return space

    def codes(self, ids: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """Raw (shape (m, ds), texture (m, dt)) codes of `ids`, as the run's tables hold them."""
        pos = self._positions(ids)
        s, t = self.transform.codes("joint", self._vectors["joint"][pos])
        return s, t

    def _positions(self, ids: Iterable[str]) -> np.ndarray:
        """Positions of `ids` in this reader's vectors, without a query to the database (a search by
        asset is then one FAISS call); an unknown id is a `CatalogError` naming it."""
        ids = list(ids)
        if self._where_is is None:
            self._where_is = {a: i for i, a in enumerate(self.ids)}
        missing = [a for a in ids if a not in self._where_is]
        if missing:
            self.store.rows_of(missing)  # not in the catalog at all: its error names them
            raise CatalogError(f"{self.path}: {missing[0]!r} was added after this catalog was opened; open it again")
        return np.array([self._where_is[a] for a in ids], dtype=np.int64)

    def index(self, space: str = "joint") -> LatentIndex:
        """The FAISS index of `space`, loaded once; a missing, corrupt or stale file is rebuilt."""
        self._feature_space(space)
        if space not in self._indexes:
            p = index_path(self.path, space)
            try:
                self._indexes[space] = LatentIndex.read(p, self._vectors[space], use_gpu=self.use_gpu)
            except IndexFileError as exc:
                self.log(f"catalog: {exc}; rebuilding the {space} index from the database")
                index = LatentIndex(self._vectors[space].shape[1], use_gpu=self.use_gpu)
                index.add(self._vectors[space])
                self._write_if_unlocked(index, p)
                self._indexes[space] = index
        return self._indexes[space]

    def _write_if_unlocked(self, index: LatentIndex, p: Path) -> None:
        # Repair the file only when no build holds the catalog (otherwise the build will write it)
        # and nothing was committed since this reader read its vectors: an index of an older state
        # would replace the one a build has just written, and the next reader would rebuild again.
        try:
            with open(self.path / LOCK_NAME, "a+") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                try:
                    if self.store.data_version() != self._opened_version:
                        return
                    index.write(p)
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)
        except BlockingIOError:
            return  # a build holds the catalog and will write the file itself
        except OSError as exc:
            self.log(f"catalog: could not save the rebuilt index {p} ({exc}); using it from memory")

    def _searcher(self, space: str, where: str | None, min_confidence: float):
        if not where:
            return self.index(space)
        key = (space, where, min_confidence)
        stamp = self.store.change_stamp()
        with self._restricted_lock:
            if stamp != self._restricted_stamp:
                self._restricted.clear()
                self._restricted_stamp = stamp
            view = self._restricted.get(key)
            if view is not None:
                self._restricted.move_to_end(key)
                return view
        rows = filter_rows(self.store, where, self.rows, min_confidence)
        view = self.index(space).restrict(np.array([self._pos[int(r)] for r in rows], dtype=np.int64))
        with self._restricted_lock:
            if stamp == self._restricted_stamp:  # not when the database changed while the view was built
                self._restricted[key] = view
                while len(self._restricted) > RESTRICTED_CACHE:
                    self._restricted.popitem(last=False)
        return view

    # -- search -----------------------------------------------------------------------------------
    def similar(self, asset_id: str, k: int = 10, space: str = "joint", where: str | None = None,
                min_confidence: float = 0.5) -> list[dict[str, Any]]:
        """The k assets nearest to `asset_id` in `space` (itself excluded), optionally filtered by `where`."""
        pos = self._positions([asset_id])[0]
        hits = self.search_vectors(self.vectors(space)[pos], k + 1, space, where, min_confidence)
        hits = [h for h in hits if h["id"] != asset_id][:k]
        for n, h in enumerate(hits, 1):
            h["rank"] = n
        return hits

    def search_vectors(self, vector: np.ndarray, k: int = 10, space: str = "joint", where: str | None = None,
                       min_confidence: float = 0.5) -> list[dict[str, Any]]:
        """Nearest assets to one vector (d,) of `space`: [{"id", "distance", "rank"}] nearest first."""
        D, I = self._searcher(self._feature_space(space), where, min_confidence).search(np.asarray(vector, np.float32)[None], k)
        return [{"id": self.ids[i], "distance": round(float(np.sqrt(max(d, 0.0))), 5), "rank": n + 1}
                for n, (d, i) in enumerate(zip(D[0], I[0])) if i >= 0]

    def search_codes(self, shape: np.ndarray, texture: np.ndarray, k: int = 10, space: str = "joint",
                     where: str | None = None) -> list[dict[str, Any]]:
        """Nearest assets to raw codes: shape (ds,), texture (dt,)."""
        return self.search_vectors(self.code_vectors(space, shape, texture)[0], k, space, where)

    def code_vectors(self, space: str, shape: np.ndarray, texture: np.ndarray) -> np.ndarray:
        """(n, d) vectors of `space` for raw codes shape (n, ds), texture (n, dt); decoded spaces go through the NeRF.

        In texture_only, codes are new assets: none leaves itself out of the reference set, so an
        asset's own codes land near (not on) its stored vector."""
        if self._feature_space(space) == TEXTURE_ONLY:
            texture_vectors = self.transform.vectors("texture", shape, texture)
            return self._texture_only.transform(texture_vectors, self.code_vectors("geometry", shape, texture), np.full(len(texture_vectors), -1),
                                 self.rows, self._vectors["texture"], self._vectors["geometry"])
        if space not in DECODED_SPACES:
            return self.transform.vectors(space, shape, texture)
        from assets2vec.catalog.appearance import appearance_vectors, decode_appearance
        from assets2vec.catalog.geometry import PROFILE_KIND, GeometryPCA, decode_profiles

        if space == "appearance":
            return appearance_vectors(decode_appearance(self.model()[0], shape, texture))
        if self.store.get_meta("geometry_profile") != PROFILE_KIND:
            raise CatalogError(f"{self.path}: this catalog's geometry space was decoded by an older assets2vec; "
                               f"run 'assets2vec catalog build RUN {self.path}' to decode it again")
        self._check_fit_unchanged()
        if self._geometry_pca is None:
            self._geometry_pca = GeometryPCA.from_json(self.store.get_meta("geometry_pca"))
        return self._geometry_pca.transform(decode_profiles(self.model()[0], shape))

    def _check_fit_unchanged(self) -> None:
        """Raise when a build has refitted the geometry PCA or the standardisation since this reader opened.
        The metadata (megabytes: hashing it costs tens of milliseconds) is hashed only
        when another connection has committed since the last check."""
        version = self.store.data_version()
        if version == self._checked_version:
            return
        if self.store.meta_digest("geometry_pca", "transform") != self._fit_digest:
            raise CatalogError(f"{self.path}: the catalog was rebuilt with a new geometry PCA since it was opened; open it again")
        self._checked_version = version

    def search_image(self, image: np.ndarray | str | os.PathLike | bytes, k: int = 5, space: str = "joint",
                     where: str | None = None, seed: int = 0, box=None, rule: "MatchRule | None" = None,
                     name: str | None = None) -> dict[str, Any]:
        """Which asset is in this photo: find the object, fit the run's codes, a camera and a colour
        transform to it (`assets2vec.photo_fit`), and search with the fitted codes.

        `image`: a path, encoded bytes, or an (H, W, 3|4) uint8 array; any camera, any background
        (the object is taken from the alpha when there is one, else segmented). `box`: optional
        (x0, y0, x1, y1) in photo pixels around the object, for cluttered photos. `name`: what errors call
        the photo (default: its path, or "photo").
        The first search of a run builds its photo bank (every training code rendered from a sphere of
        poses on a coarse grid) and saves it in the run folder. When the run has a photo encoder
        (`assets2vec photo-encoder RUN`), the encoder names the asset and the fit, on that asset only,
        finds the camera, the colour transform and the codes; without one, the fit compares every asset.
        `confidence`: the fit's silhouette IoU, colour PSNR and loss (the match rule reads these), the
        margin to the runner-up (the encoder's probability ratio less one, or the fit's loss ratio; None
        when there is no runner-up), the encoder's probability of the answer and the photo's familiarity
        (how close it lies to the answer's own training views; `TrainedEncoder.familiarity`), both None
        without an encoder.

        Returns {"match": the asset id, or None when no catalog asset explains the photo well enough
        (`rule`), "verdict" (a sentence), "confidence" {"iou", "psnr", "margin", "loss"}, "asset" (the
        catalog asset that explained it best), "runner_up", "neighbours" (nearest to the fitted codes
        in `space`, filtered by `where`), "shape_code" (ds,), "texture_code" (dt,), "camera" {"c2w" (4, 4),
        "K" (3, 3) in the photo's pixels, "photo_size"}, "colour" {"gain"} (per channel, applied to the render), "mask_source", "mask" (H, W) bool: the object found in the photo,
        "proposals" (with a photo encoder: the catalog assets most probably in the photo, most probable first;
        None without one), "render" (S, S, 3) uint8 of the fit, "overlay" (H', W', 3) uint8 of the fit on the
        photo, "seconds" (the encoder and the fit; reading the photo, finding the object and loading the bank
        are not counted)}.
        """
        import torch

        from assets2vec.images import read_image
        from assets2vec.photo import overlay, prepare_photo
        from assets2vec.photo_encoder import PROPOSALS
        from assets2vec.photo_fit import ENCODER_RULE, ENCODER_RULE_NO_FAMILIARITY, MatchRule, PhotoFitConfig, fit_photo

        model, _, size = self.model()
        name = name or (str(image) if isinstance(image, (str, os.PathLike)) else "photo")
        photo = read_image(image, name) if isinstance(image, (str, os.PathLike, bytes, bytearray)) else np.asarray(image)
        prepared = prepare_photo(photo, size, box=box, name=name, segmenter=self.photo_segmenter())
        encoder, bank = self.photo_encoder(), self.photo_bank()  # read (or built) once per catalog
        t0 = time.time()
        familiarity = None
        if encoder is None:  # the fit compares every catalog asset and names the one that explains the photo best
            proposals, probability = None, None
            fit = fit_photo(model, prepared, bank, PhotoFitConfig(seed=seed))
            asset = self._run_ids[fit.row]
            runner = None if fit.runner_up is None else self._run_ids[fit.runner_up]
            margin = fit.margin
            ranked = "no runner-up" if runner is None else f"runner-up {runner} {fit.margin:+.0%} worse"
        else:  # the encoder names the asset; the fit finds its camera, colour and codes, and checks it
            probs, familiarity = encoder.read(prepared.image)
            top = torch.topk(probs, min(PROPOSALS, len(probs)))
            proposals, probability = [self._run_ids[int(r)] for r in top.indices], float(top.values[0])
            fit = fit_photo(model, prepared, bank, PhotoFitConfig(seed=seed), codes=top.indices[:1])
            asset, runner = proposals[0], proposals[1] if len(proposals) > 1 else None
            margin = float(top.values[0] / top.values[1].clamp(min=1e-9) - 1) if len(proposals) > 1 else None
            ranked = f"probability {probability:.0%}" + ("" if familiarity is None else f", familiarity {familiarity:.2f}")
            ranked += f", runner-up {runner}"
        seconds = time.time() - t0
        margin = None if margin is None or not math.isfinite(margin) else round(margin, 4)  # JSON has no infinity
        rule = rule or (MatchRule() if encoder is None else ENCODER_RULE if familiarity is not None else ENCODER_RULE_NO_FAMILIARITY)
        s, t = fit.shape_code.cpu().numpy(), fit.texture_code.cpu().numpy()
        matched = rule(fit, probability, familiarity)
        verdict = (f"{asset} (silhouette IoU {fit.iou:.2f}, colour {fit.psnr:.1f} dB, {ranked})" if matched else
                   f"no asset in the catalog matches: the best, {asset}, explains the photo only to silhouette IoU "
                   f"{fit.iou:.2f} and {fit.psnr:.1f} dB{'' if encoder is None else ', ' + ranked} ({rule.describe()})")
        return {
            "match": asset if matched else None, "verdict": verdict, "rule": rule.to_json(),
            "confidence": {"iou": round(fit.iou, 4), "psnr": round(fit.psnr, 2), "margin": margin,
                           "loss": round(fit.loss, 5), "joint_loss": round(fit.joint_loss, 5), "probability": probability,
                           "familiarity": None if familiarity is None else round(familiarity, 4)},
            "asset": asset, "runner_up": runner,
            "neighbours": self.search_codes(s, t, k, space, where), "shape_code": s, "texture_code": t,
            "camera": {"c2w": fit.c2w, "K": prepared.framing.intrinsics_in_photo(fit.K), "K_crop": fit.K,
                       "photo_size": prepared.framing.photo_size},
            "colour": {"gain": fit.gain}, "mask_source": prepared.mask_source, "mask": prepared.mask,
            "proposals": proposals, "fit_psnr": round(fit.psnr, 2), "seconds": round(seconds, 2),
            "render": (np.clip(fit.render[..., :3], 0, 1) * 255 + 0.5).astype(np.uint8),
            "overlay": overlay(photo, prepared.framing, fit.render),
        }

    def photo_encoder(self):
        """The run's photo encoder (`assets2vec photo-encoder RUN`), or None when the run has none: then the
        photo fit compares every catalog asset's bank renders."""
        if self._encoder is None:
            from assets2vec import photo_encoder

            self.model()
            try:
                encoder = photo_encoder.for_run(self._encoder_path, self._run_ids)
                self._encoder = encoder.to(self.device) if encoder is not None else False
            except ValueError as exc:
                raise CatalogError(str(exc)) from exc
        return self._encoder or None

    def photo_segmenter(self):
        """The run's photo segmenter (trained by `assets2vec photo-encoder RUN`), or None when the run has
        none: then the object is found by its colours alone (`assets2vec.photo.object_mask`)."""
        if self._segmenter is None:
            from assets2vec import photo_segmenter

            self.model()
            try:
                segmenter = photo_segmenter.for_run(self._segmenter_path)
                self._segmenter = segmenter.to(self.device) if segmenter is not None else False
            except ValueError as exc:
                raise CatalogError(str(exc)) from exc
        return self._segmenter or None

    def photo_bank(self):
        """The run's framed bank for photo search: read from the run folder, or built and saved there."""
        if self._bank is None:
            from assets2vec.code_bank import CodeBank
            from assets2vec.photo import FILL
            from assets2vec.photo_fit import photo_poses
            from render_core.rig import intrinsics

            model, rig, size = self.model()
            self._bank = CodeBank.for_run(self._run, model, photo_poses(rig), intrinsics(rig.fov_deg, size), size,
                                          grid=PHOTO_BANK_GRID, fill=FILL)
        return self._bank

    # -- tags -------------------------------------------------------------------------------------
    def set_tags(self, name: str, labels: dict[str, str]) -> None:
        """Set manual tag `name` on assets: {asset id: value}; unknown ids are an error, nothing written."""
        rows = self.store.rows_of(labels)
        with self.store.write():
            self.store.set_tags(name, rows, list(labels.values()))

    def tag(self, attribute: str, labels: dict[str, str] | str | os.PathLike | None = None, space: str = "joint",
            where: str | None = None, candidates: tuple[str, ...] = CANDIDATES, seed: int = 0, suggest: int = 10) -> dict[str, Any]:
        """Train a classifier for `attribute` from labels and apply it to every asset.

        `labels`: {asset id: value} or a CSV with columns `id` and `value` (or `id,<attribute>`);
        they are stored as manual tags first, and every manual tag of `attribute` trains the
        classifier. `where` limits which assets get predictions (e.g. "family=chair"). Returns the chosen model, its cross-validated accuracy, the per-candidate
        scores, predicted class counts and the `suggest` unlabelled assets most worth labelling.
        """
        self._feature_space(space)
        if labels is not None:
            if not isinstance(labels, dict):
                labels = read_labels(labels, attribute)
            self.set_tags(attribute, labels)
        tagged = self.store.tags(attribute)  # the database's order: the folds follow it
        if not tagged:
            raise CatalogError(f"no labels for {attribute!r}: pass some with --labels")
        lab_pos = np.array([self._pos[r] for r in tagged if r in self._pos], dtype=np.int64)
        y = np.array([tagged[int(self.rows[p])] for p in lab_pos])
        clf = AttributeClassifier(candidates=candidates, random_state=seed, standardize=space in STANDARDISED_SPACES)
        clf.fit(self._vectors[space][lab_pos], y)
        scope = self._scope(where)
        proba = clf.predict_proba(self._vectors[space][scope])
        pred = clf.classes_[proba.argmax(1)]
        conf = proba.max(1)
        # What the predictions follow from: rerunning the same tagging (after a crash, or twice) stores nothing new.
        inputs = hashlib.sha256(json.dumps([attribute, space, list(candidates), seed, list(tagged.items()),
                                            vectors_digest(self._vectors[space]), self.rows[scope].tolist()]).encode()).hexdigest()
        details = {"params": {k: repr(v) for k, v in clf.best_params_.items()}, "candidates": clf.cv_results_, "seed": seed,
                   "inputs": inputs}
        with self.store.write():
            last = self.store.classifier(attribute)
            if last is not None and last.get("inputs") == inputs:
                cid = last["id"]
            else:
                cid = self.store.add_classifier(attribute, space, clf.model_name_, clf.cv_accuracy_, len(y), clf.classes_.tolist(), details)
                self.store.put_predictions(attribute, self.rows[scope], pred.tolist(), conf, cid)
        unlabelled = np.flatnonzero(~np.isin(scope, lab_pos))
        order = unlabelled[uncertainty_order(proba[unlabelled])][:suggest]
        values, counts = np.unique(pred, return_counts=True)
        return {
            "attribute": attribute, "space": space, "model": clf.model_name_, "params": details["params"],
            "cv_accuracy": round(clf.cv_accuracy_, 4), "candidates": {k: round(v, 4) for k, v in clf.cv_results_.items()},
            "n_labels": int(len(y)), "labels_per_class": dict(zip(*[a.tolist() for a in np.unique(y, return_counts=True)])),
            "predicted_counts": dict(zip(values.tolist(), counts.tolist())), "classifier_id": cid,
            "n_predicted": int(len(scope)),
            "label_next": [{"id": self.ids[scope[i]], "predicted": str(pred[i]), "confidence": round(float(conf[i]), 4)} for i in order],
        }

    def filter(self, where: str, min_confidence: float = 0.5) -> list[str]:
        """Ids of the assets matching a `--where` expression, e.g. "family=chair, legs=4|5"."""
        return [self.ids[i] for i in self._scope(where, min_confidence)]

    def _scope(self, where: str | None, min_confidence: float = 0.5) -> np.ndarray:
        """Positions of the assets matching `where` (all when None)."""
        if not where:
            return np.arange(len(self.ids))
        rows = filter_rows(self.store, where, self.rows, min_confidence)
        return np.array([self._pos[int(r)] for r in rows], dtype=np.int64)

    def predict(self, attribute: str) -> dict[str, dict[str, Any]]:
        """{asset id: {"value", "confidence"}} from the latest classifier of `attribute`."""
        preds = self.store.predictions(attribute)
        if not preds:
            raise CatalogError(f"no predictions for {attribute!r}; train them with tag({attribute!r}, labels)")
        return {self.ids[self._pos[r]]: {"value": v, "confidence": round(c, 4)} for r, (v, c) in preds.items() if r in self._pos}

    def values(self, name: str, min_confidence: float = 0.0) -> list[str | None]:
        """Value of attribute/tag `name` per asset in `ids` order (known values first, then predictions)."""
        vals = effective_values(self.store, name, min_confidence)
        return [vals.get(int(r)) for r in self.rows]

    def asset(self, asset_id: str) -> dict[str, Any]:
        return self.store.asset(asset_id)

    def thumbnail(self, asset_id: str) -> bytes | None:
        """PNG bytes of the asset's first rendered view, if the dataset had one."""
        return self.store.thumbnail(asset_id)

    # -- the space: map, density, sampling ------------------------------------------------------------
    def map(self, space: str = "shape", method: str = "pca", color_by: str = "family", path: str | os.PathLike | None = None,
            seed: int = 0, sparse: int = 0) -> dict[str, Any]:
        """2D map of `space`: {"coords" (n, 2), "labels" (n,), "ids", "sparse" (m, 2)}; with `path`, also a PNG.

        `sparse`: also place the m sparsest regions on the map (at the mean position of their
        bordering assets, since t-SNE cannot project new points). `color_by`: an attribute or tag
        (`store.attribute_names()`); another name is a `CatalogError` listing them."""
        names = self.store.attribute_names()
        if color_by not in names:
            raise CatalogError(f"color_by: no attribute or tag named {color_by!r}; this catalog has {', '.join(names)}")
        coords = latent_map.project(self.vectors(space), method, seed)
        labels = self.values(color_by)
        regions = self.sparse_regions(sparse, space, samples=1, seed=seed, propose=False) if sparse else []
        centers = np.array([coords[r.border].mean(0) for r in regions]).reshape(-1, 2)
        if path is not None:
            latent_map.plot_map(coords, labels, path, title=f"{space} space ({method}), coloured by {color_by}",
                                highlights={"sparse regions": centers} if len(centers) else None)
        return {"coords": coords, "labels": labels, "ids": list(self.ids), "sparse": centers}

    def isolation(self, space: str = "shape", k: int = 5) -> np.ndarray:
        """(n,) mean distance of each asset to its k nearest others in `space`: high means sparse."""
        return density.isolation(self.vectors(space), k)

    def coverage_weights(self, space: str = "shape", k: int = 5, power: float = 1.0) -> dict[str, float]:
        """{asset id: sampling weight} (sum 1) proportional to isolation**power: assets in sparse
        parts of `space` are drawn more often, evening out coverage in the next scenes."""
        if power < 0:
            raise ValueError(f"power must be >= 0, got {power}")
        iso = np.maximum(self.isolation(space, k), 0) ** power
        w = iso / iso.sum() if iso.sum() > 0 else np.full(len(iso), 1.0 / len(iso))
        return {a: float(x) for a, x in zip(self.ids, w)}

    def sparse_regions(self, n: int = 5, space: str = "shape", samples: int = 4, seed: int = 0,
                       propose: bool = True, within: str | None = None) -> list[density.SparseRegion]:
        """The n emptiest regions of `space` (one of `SPARSE_SPACES`), each with bordering assets,
        and, for procedural families, proposed generator parameters for `samples` points inside it
        (region.extra["proposals"]). In the code spaces the points are also raw codes one can render
        (region.extra["samples"]: shape and texture); the geometry space has no way back to codes, so
        there the shape parameters are regressed from the points and the appearance ones from the
        texture of the nearest bordering asset.

        `within`: an attribute or tag (e.g. "family"); holes are then looked for among the assets of
        each value separately (`density.sparse_regions_within`), and proposals keep that value's family."""
        check_space(space, SPARSE_SPACES)
        if within is None:
            regions = density.sparse_regions(self.vectors(space), n, seed=seed)
        else:
            groups = self.values(within)
            if all(g is None for g in groups):
                raise CatalogError(f"{self.path}: no asset has a value for {within!r}; pick an attribute or tag the assets have")
            regions = density.sparse_regions_within(self.vectors(space), groups, n, seed=seed)
        proposer = self._proposer(space) if propose else None
        for r in regions:
            pts = density.sample_in_region(r, samples, seed + r.rank)
            if space in SPACES:
                shape, texture = self._codes_for(space, pts, r.border[0])
                r.extra["samples"] = {"shape": shape, "texture": texture}
                sv, tv = self.transform.vectors("shape", shape, texture), self.transform.vectors("texture", shape, texture)
            else:
                sv, tv = pts, np.repeat(self.vectors("texture")[r.border[:1]], len(pts), 0)
            if proposer is not None:
                family = r.extra.get("group") if within == "family" else None
                r.extra["proposals"] = [p for p in (proposer.propose(sv[i], tv[i], family) for i in range(len(pts))) if p]
        return regions

    def _codes_for(self, space: str, pts: np.ndarray, donor: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw codes for points of `space`; the half the space lacks comes from asset position `donor`."""
        s, t = self.transform.codes(space, pts)
        ds, dt = self.transform.codes("joint", self._vectors["joint"][donor][None])
        s = s if s is not None else np.repeat(ds, len(pts), 0)
        t = t if t is not None else np.repeat(dt, len(pts), 0)
        return s.astype(np.float32), t.astype(np.float32)

    def _proposer(self, space: str = "shape") -> ParameterProposer | None:
        """Generator parameters regressed from `space`'s vectors (shape parameters; the geometry space
        when asked, else the shape space) and the texture vectors (appearance parameters)."""
        meta = self.store.asset_columns("family", "params")
        families = [meta.get(int(r), (None, "{}"))[0] for r in self.rows]
        params = [json.loads(meta.get(int(r), (None, "{}"))[1]) for r in self.rows]
        try:
            return ParameterProposer().fit(self.vectors("geometry" if space == "geometry" else "shape"), self.vectors("texture"),
                                           families, params)
        except ValueError:
            return None

    def sample(self, n: int, near: str | None = None, region: density.SparseRegion | None = None, space: str = "shape",
               spread: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """n new latent points as raw codes (shape (n, ds), texture (n, dt)).

        `near`: around an asset, `spread` times its nearest-neighbour distance; `region`: inside a
        sparse region; neither: from a Gaussian fitted to the catalog's vectors of `space`.
        """
        rng = np.random.default_rng(seed)
        X = self.vectors(space)
        if near is not None and region is not None:
            raise ValueError("pass near= or region=, not both")
        if region is not None:
            return self._codes_for(space, density.sample_in_region(region, n, seed), int(region.border[0]))
        if near is not None:
            pos = self._positions([near])[0]
            nn = max(float(density.isolation(X, 1)[pos]), 1e-3)
            pts = X[pos] + rng.normal(0, spread * nn / np.sqrt(X.shape[1]), (n, X.shape[1]))
            return self._codes_for(space, pts.astype(np.float32), pos)
        cov = np.cov(X.T) if len(X) > 1 else np.eye(X.shape[1])
        pts = rng.multivariate_normal(X.mean(0), cov, n).astype(np.float32)
        return self._codes_for(space, pts, int(rng.integers(len(X))))

    # -- synthetic scenes -------------------------------------------------------------------------------
    def select(self, where: str | None = None, like: str | None = None, k: int = 50, space: str = "joint",
               ids: Iterable[str] | None = None, min_confidence: float = 0.5) -> list[str]:
        """Asset ids chosen by filter (`where`), by similarity (the k nearest to `like`, itself
        included) and/or an explicit list (`ids`); all of them when none is given."""
        chosen = [self.ids[i] for i in self._scope(where, min_confidence)]
        if like is not None:
            near = [like] + [h["id"] for h in self.similar(like, k - 1, space, where, min_confidence)] if k > 1 else [like]
            keep = set(chosen)
            chosen = [a for a in near if a in keep or not where]
        if ids is not None:
            wanted = list(dict.fromkeys(ids))
            self._positions(wanted)  # unknown ids are an error naming them
            keep = set(chosen)
            chosen = [a for a in wanted if a in keep]
        if not chosen:
            raise CatalogError("the selection is empty: no asset matches it")
        return chosen

    def scene_assets(self, ids: list[str], semantic_by: str = "family", min_confidence: float = 0.5,
                     unavailable: dict[str, str] | None = None):
        """`SceneAsset`s (mesh file, class, size) for `ids`, classed by attribute or tag `semantic_by`.
        Assets whose mesh cannot be found through their dataset are left out; `unavailable`, when
        given, receives them as {asset id: why} (see `scene_pool`)."""
        pos = self._positions(ids)
        return scene_pool(self.store, self.rows[pos], list(ids), semantic_by, min_confidence, unavailable)

    def generate_scenes(self, out: str | os.PathLike, n: int, seed: int = 0, config=None, *,
                        where: str | None = None, like: str | None = None, k: int = 50, space: str = "joint",
                        ids: Iterable[str] | None = None, weights=None, min_confidence: float = 0.5,
                        device: str | None = None, progress: bool = True, on_scene=None, renderer: str = "raster") -> dict:
        """Render n labelled scenes of chosen assets into `out` (see `render_core.scenes.generate`).

        `config`: a `SceneConfig`, a YAML path or None (defaults); `weights`: a CSV path or
        {asset id: weight} (from `weak_spots` or the coverage page), drawn proportionally within
        the selection. Returns the run report; rerunning resumes. Selected assets whose mesh cannot be
        found through their dataset are left out of the pool and listed in the report's "failed_assets"."""
        from render_core.scenes import SceneConfig, generate_scenes, load_config

        cfg = config if isinstance(config, SceneConfig) else load_config(config)
        chosen = self.select(where, like, k, space, ids, min_confidence)
        unavailable: dict[str, str] = {}
        pool = self.scene_assets(chosen, cfg.semantic_by, min_confidence, unavailable)
        if not pool:
            first = next(iter(unavailable.items()))
            raise CatalogError(f"none of the {len(chosen)} selected assets has a mesh to compose scenes from "
                               f"(e.g. {first[0]}: {first[1]})")
        w = read_weights(weights, chosen, set(self.ids)) if weights is not None else None
        if w is not None and unavailable:
            kept = {a.id for a in pool}
            w = w[[i for i, a in enumerate(chosen) if a in kept]]
        selection = {"catalog": str(self.path.resolve()), "where": where, "like": like, "k": k if like else None,
                     "space": space if like else None, "weights": str(weights) if isinstance(weights, (str, os.PathLike)) else
                     ("dict" if weights is not None else None), "assets": len(chosen)}
        device = str(self.device) if device is None else device  # the scenes rasterize where the network runs
        report = generate_scenes(pool, out, n, seed, cfg, w, selection, device=device, progress=progress, on_scene=on_scene,
                                 renderer=renderer)
        if unavailable:
            failed = report["failed_assets"] + [{"asset_id": a, "error": e} for a, e in unavailable.items()]
            report["failed_assets"] = sorted(failed, key=lambda f: f["asset_id"])
        return report

    def weak_spots(self, errors: str | os.PathLike, scenes: str | os.PathLike | None = None, space: str = "shape",
                   n: int = 3, size: int = 10, k: int = 10, prior: str | os.PathLike | dict | None = None,
                   sharpness: float | None = None, keep_uniform: float | None = None, proposals: int = 4,
                   seed: int = 0) -> dict[str, Any]:
        """Where a downstream model fails: read per-asset (or per-image, with `scenes`) error scores,
        predict an error for every asset from its neighbours in `space`, rank `n` weak regions of
        `size` assets, and reshape the sampling weights (`prior`: earlier weights, default uniform;
        `sharpness`, `keep_uniform`: see `weak_spots.reweight`, defaults `weak_spots.SHARPNESS`, `KEEP_UNIFORM`).

        Returns {"weights": {id: w}, "prior": (n_assets,), "after": (n_assets,), "predicted_error": (n_assets,),
        "regions": [WeakRegion.to_json], "share_before", "share_after", "proposals": [...], "_regions": [WeakRegion]}."""
        from assets2vec.catalog import weak_spots as ws

        X = self.vectors(space)
        errs, counts = ws.read_errors(errors, self.ids, scenes)
        pred = ws.predict_errors(X, errs, counts, k)
        regions = ws.weak_regions(X, pred, errs, counts, n, size)
        before = read_weights(prior, self.ids, set(self.ids)) if prior is not None else np.ones(len(self.ids))
        if before.sum() <= 0:
            raise CatalogError(f"{prior}: every prior weight is zero")
        before = before / before.sum()
        after = ws.reweight(pred, before, ws.SHARPNESS if sharpness is None else sharpness,
                            ws.KEEP_UNIFORM if keep_uniform is None else keep_uniform)
        props = []
        proposer = self._proposer() if proposals > 0 else None
        if proposer is not None:
            for r in regions:
                shape, texture = self.sample(proposals, near=self.ids[r.centre], space=space, seed=seed + r.rank)
                sv, tv = self.transform.vectors("shape", shape, texture), self.transform.vectors("texture", shape, texture)
                for i in range(len(shape)):
                    p = proposer.propose(sv[i], tv[i])
                    if p:
                        props.append({**p, "region": r.rank})
        return {
            "space": space, "scored_assets": int((counts > 0).sum()),
            "weights": {a: float(w) for a, w in zip(self.ids, after)},
            "prior": before, "after": after, "predicted_error": pred,
            "regions": [r.to_json(self.ids) for r in regions], "_regions": regions,
            "share_before": float(sum(before[r.members].sum() for r in regions)),
            "share_after": float(sum(after[r.members].sum() for r in regions)),
            "proposals": props,
        }

    # -- rendering through the NeRF ------------------------------------------------------------------
    def model(self):
        """(model, rig, image size) of the run this catalog was built from, loaded once."""
        if self._model is None:
            from assets2vec.run import Run

            run = self.store.get_meta("run")
            if not run or not Path(run).exists():
                raise CatalogError(f"the run this catalog was built from ({run}) is not available; rendering and image search need it")
            opened = Run.open(run)
            rig, size = opened.rig()
            self._model = (opened.model(self.device), rig, size)
            self._run, self._encoder_path, self._segmenter_path = run, opened.encoder_path, opened.segmenter_path
            self._run_ids = opened.asset_ids
        return self._model

    def render(self, shape: np.ndarray, texture: np.ndarray, azimuth: float = 30.0, elevation: float = 20.0,
               size: int | None = None, c2w: np.ndarray | None = None) -> np.ndarray:
        """(S, S, 3) uint8 render of raw codes shape (ds,), texture (dt,): from `c2w` (4, 4), a camera-to-world
        pose in the OpenGL convention, or else from (azimuth, elevation) at the run's rig distance."""
        import torch

        from assets2vec.latent import render_image
        from render_core.poses import orbit_poses
        from render_core.rig import intrinsics

        model, rig, trained = self.model()
        size = size or trained
        pose = orbit_poses(elevation, np.array([azimuth]), rig.distance)[0] if c2w is None else np.asarray(c2w, np.float32)
        if pose.shape != (4, 4):
            raise ValueError(f"c2w must be a 4x4 camera-to-world matrix, got shape {pose.shape}")
        return render_image(model, pose, intrinsics(rig.fov_deg, size), size,
                       torch.as_tensor(np.asarray(shape, np.float32)), torch.as_tensor(np.asarray(texture, np.float32)))

    def swap(self, shape_of: str, texture_of: str, **camera) -> np.ndarray:
        """(S, S, 3) uint8: the shape of asset `shape_of` wearing the texture of `texture_of`."""
        s, _ = self.codes([shape_of])
        _, t = self.codes([texture_of])
        return self.render(s[0], t[0], **camera)


def load_scene(folder: str | os.PathLike, index: int) -> dict[str, Any]:
    """Scene `index` of a SCENES folder: {"rgb" (H,W,3), "overlay" (PIL image with masks and boxes),
    "depth", "instance", "semantic" (H,W), "record" (its labels JSON)}."""
    from PIL import Image

    from render_core.artifacts import load_npz
    from render_core.scenes import scene_overlay
    from render_core.scenes.folder import has_scene, image_path, maps_path, read_record

    folder = Path(folder)
    if not has_scene(folder, index):
        raise CatalogError(f"{folder}: has no scene {index}")
    return {"rgb": np.asarray(Image.open(image_path(folder, index)).convert("RGB")), "overlay": scene_overlay(folder, index),
            **load_npz(maps_path(folder, index)), "record": read_record(folder, index)}


def read_labels(path: str | os.PathLike, attribute: str) -> dict[str, str]:
    """{asset id: value} from a CSV with columns `id` and `value` (or `id` and the attribute's name)."""
    path = Path(path)
    reader, cols = open_csv(path, "labels file", MAX_LABELS_BYTES)
    col = first_column(cols, "value", attribute)
    if "id" not in cols or col is None:
        raise CatalogError(f"{path}: needs columns 'id' and 'value' (or '{attribute}'), found {cols}")
    labels = {}
    for n, rec in enumerate(reader, 2):
        if not rec["id"] or rec[col] is None or not rec[col].strip():
            raise CatalogError(f"{path}:{n}: empty id or value")
        labels[rec["id"].strip()] = rec[col].strip()
    if not labels:
        raise CatalogError(f"{path}: no labels")
    return labels


__all__ = ["Catalog", "CatalogError", "SPACES", "read_labels"]
