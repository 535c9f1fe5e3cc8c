"""`AttributeClassifier`: a scikit-learn estimator that picks its model by cross-validation.

From a handful of labelled latents it tries a logistic regression, a linear SVM, an RBF
SVM, k-nearest neighbours (each over a small hyper-parameter grid, on standardised
inputs) and a linear discriminant with a shrunk covariance, scores each by cross-validated
accuracy (stratified k-fold repeated three times over different shuffles: with a few dozen
labels one split's score swings by several points, and the choice with it), keeps one by the
one-standard-error rule (`choose_candidate`), refits it on all labels, and gives calibrated-enough confidences through `predict_proba`. `uncertainty_order` ranks
unlabelled assets by how unsure the classifier is (smallest margin between the two most
likely classes first), which is what to label next.

Why the shrinkage LDA: with 20 labels per class in 64 dimensions, one pooled covariance shrunk
towards the diagonal (Ledoit-Wolf, no parameter to search) is what a few labels can estimate,
and it weighs a part that varies little within a class (an armrest's thickness) by how little
it varies. On decoded geometry it reads armrests better than the choice among the other four
(BENCHMARKS.md).

Why the one-standard-error rule (Hastie, Tibshirani and Friedman, "Elements of Statistical
Learning", 7.10): with 20 labels per class the candidates' cross-validated means lie within a
standard error or two of each other, and each grid candidate's mean is the maximum of several
noisy scores, so it reads optimistically against the LDA, which searches nothing. (The standard
error is that of the mean over all 15 repeated folds; they overlap, so it is narrower than ESL's
over K folds, and the rule keeps the LDA less often than theirs would.) Against taking the
highest mean, the rule was as good or better on every attribute of the trainings it was chosen
on and held on one made after (`benchmarks/model_choice.py`, BENCHMARKS.md).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.model_selection import GridSearchCV, RepeatedStratifiedKFold, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.utils.validation import check_is_fitted

CANDIDATES = ("logistic", "linear_svm", "rbf_svm", "knn", "lda")
PREDICT_CHUNK = 65_536  # rows per predict_proba call: a kernel block stays ~100 MB at 200 labels
CV_REPEATS = 3  # shuffles of the k folds the choice is averaged over (armrests 93.2 -> 94.8 % on the benchmark against one)


def _grid(name: str, min_train: int, seed: int) -> dict:
    if name == "logistic":
        return {"clf": [LogisticRegression(max_iter=5000)], "clf__C": [0.1, 1.0, 10.0]}
    if name == "linear_svm":
        return {"clf": [LinearSVC(max_iter=20000, random_state=seed)], "clf__C": [0.01, 0.1, 1.0]}
    if name == "rbf_svm":
        rbf = Pipeline([("kernel", RBFKernelMap()), ("svc", SVC(kernel="precomputed"))])
        return {"clf": [rbf], "clf__svc__C": [1.0, 10.0]}
    if name == "knn":
        ks = [k for k in (1, 3, 5) if k <= min_train] or [1]
        return {"clf": [KNeighborsClassifier(weights="distance")], "clf__n_neighbors": ks}
    if name == "lda":
        return {"clf": [LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")]}
    raise ValueError(f"unknown candidate {name!r}; choose from {', '.join(CANDIDATES)}")


class RBFKernelMap(TransformerMixin, BaseEstimator):
    """X (n, d) -> the Gaussian kernel (n, m) against the m training rows, with SVC's gamma="scale".

    Followed by `SVC(kernel="precomputed")` it is the same classifier as `SVC(kernel="rbf",
    gamma="scale")` (tested), but the kernel is one BLAS product instead of libsvm's row-by-row
    loop: predicting a tag for 1M assets went from 25.7 s to 2.8 s (benchmarks/search_scale.py).
    """

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=np.float64)
        self.train_ = X
        variance = X.var()
        self.gamma_ = 1.0 / (X.shape[1] * variance) if variance > 0 else 1.0
        return self

    def transform(self, X):
        check_is_fitted(self, "train_")
        return rbf_kernel(np.asarray(X, dtype=np.float64), self.train_, gamma=self.gamma_)


def cv_plan(y: np.ndarray, cv: int, candidates: tuple[str, ...]) -> tuple[int, int, list[str]]:
    """For labels y (n,): the folds (at most `cv`, no more than the smallest class), the labels in the
    smallest training fold, and the candidates that can fit such a fold."""
    classes, counts = np.unique(y, return_counts=True)
    folds = int(min(cv, counts.min()))
    min_train = int(len(y) - np.ceil(len(y) / folds))
    # LDA cannot fit a fold holding no more samples than classes (scikit-learn refuses it).
    kept = [c for c in candidates if c != "lda" or min_train > len(classes)]
    if not kept:
        raise ValueError(f"the shrinkage LDA needs more labels than classes in each training fold ({min_train} labels, "
                         f"{len(classes)} classes); label more assets or add other candidates")
    return folds, min_train, kept


def choose_candidate(scores: dict[str, tuple[float, float]]) -> str:
    """The candidate to keep from {name: (cross-validated mean accuracy, its standard error)}, in the order
    they were tried: the shrinkage LDA when its mean is within one standard error of the best mean (the
    simplest candidate, with no parameter searched), otherwise the best mean, ties to the earlier candidate."""
    if not scores:
        raise ValueError("no candidate was scored")
    names = list(scores)
    best = max(names, key=lambda n: (scores[n][0], -names.index(n)))
    if "lda" in scores and scores["lda"][0] >= scores[best][0] - scores[best][1] - 1e-12:
        return "lda"
    return best


def candidate_pipeline(standardize: bool) -> Pipeline:
    """The pipeline every candidate's grid is searched in: optional per-dimension scaling, then the classifier."""
    return Pipeline([("scale", StandardScaler() if standardize else "passthrough"), ("clf", LogisticRegression())])


class AttributeClassifier(ClassifierMixin, BaseEstimator):
    """Few-shot attribute classifier over latent vectors, model chosen by cross-validation.

    Parameters: `candidates` (names from CANDIDATES), `cv` (maximum folds; fewer when a class
    has fewer labels), `random_state`, `standardize` (scale each input dimension to unit
    variance first; off for inputs whose dimensions share one scale, such as PCA coordinates,
    where it would blow up the noisy low-variance ones). Learned: `classes_`, `best_estimator_`, `model_name_`,
    `best_params_`, `cv_accuracy_` (mean accuracy of the chosen model over the folds),
    `cv_results_` (per candidate: best accuracy), `cv_standard_errors_` (per candidate: the standard
    error of that mean over the folds).
    """

    def __init__(self, candidates: tuple[str, ...] = CANDIDATES, cv: int = 5, random_state: int = 0, standardize: bool = True):
        self.candidates = candidates
        self.cv = cv
        self.random_state = random_state
        self.standardize = standardize

    def fit(self, X: np.ndarray, y: np.ndarray) -> "AttributeClassifier":
        """X (n, d) latents, y (n,) labels: at least two classes with two labels each."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y).astype(str)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"expected X (n, d) and y (n,), got {X.shape} and {y.shape}")
        classes, counts = np.unique(y, return_counts=True)
        if len(classes) == 0:
            raise ValueError("no labels given")
        if len(classes) < 2:
            raise ValueError(f"labels name a single class ({classes[0]!r}, {counts[0]} labels); a classifier needs at least two")
        if counts.min() < 2:
            few = ", ".join(f"{c!r}" for c, n in zip(classes, counts) if n < 2)
            raise ValueError(f"each class needs at least 2 labels to cross-validate; {few} has 1")
        folds, min_train, candidates = cv_plan(y, self.cv, self.candidates)
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
        chooser = RepeatedStratifiedKFold(n_splits=folds, n_repeats=CV_REPEATS, random_state=self.random_state)
        pipe = candidate_pipeline(self.standardize)
        self.cv_results_, self.cv_standard_errors_, searches = {}, {}, {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.filterwarnings("ignore", message="Only one sample available")  # LDA's within-class covariance of a 1-label class
            for name in candidates:
                search = GridSearchCV(pipe, _grid(name, min_train, self.random_state), cv=chooser, scoring="accuracy", refit=True)
                search.fit(X, y)
                self.cv_results_[name] = float(search.best_score_)
                spread = float(search.cv_results_["std_test_score"][search.best_index_])
                self.cv_standard_errors_[name] = spread / np.sqrt(chooser.get_n_splits())
                searches[name] = search
        name = choose_candidate({n: (self.cv_results_[n], self.cv_standard_errors_[n]) for n in searches})
        search = searches[name]
        self.model_name_ = name
        self.cv_accuracy_ = self.cv_results_[name]
        self.best_params_ = {k: v for k, v in search.best_params_.items() if k != "clf"}
        est = search.best_estimator_
        if not hasattr(est, "predict_proba") or name == "rbf_svm":
            # SVMs give margins, not probabilities: Platt-scale them with the same folds.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                # ensemble=False: the sigmoid is fitted on out-of-fold margins, then applied to the one model
                # fitted on every label, so predicting costs one SVM, not one per fold.
                est = CalibratedClassifierCV(clone(est), cv=splitter, method="sigmoid", ensemble=False).fit(X, y)
        self.best_estimator_ = est
        self.classes_ = classes
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, n_classes) class probabilities, columns in `classes_` order."""
        check_is_fitted(self, "best_estimator_")
        X = np.asarray(X, dtype=np.float64)
        p = np.concatenate([self.best_estimator_.predict_proba(X[i:i + PREDICT_CHUNK]) for i in range(0, len(X), PREDICT_CHUNK)]
                           or [np.zeros((0, len(self.classes_)))])
        order = [list(self.best_estimator_.classes_).index(c) for c in self.classes_]
        return p[:, order]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]


def uncertainty_order(proba: np.ndarray) -> np.ndarray:
    """Indices of rows of `proba` (n, c), least certain first (smallest top-1 minus top-2 margin)."""
    if proba.shape[1] < 2:
        return np.arange(len(proba))
    top = np.sort(proba, axis=1)
    return np.argsort(top[:, -1] - top[:, -2], kind="stable")
