"""Per-head Gaussian-mixture profiling of the system share (METHOD.md section 3).

Each head is treated as a 1-D signal over the samples. A head is *trigger-responsive*
when an information criterion prefers more than one Gaussian for it; its minority
group of components is the candidate "target" (poisoned) group, and the separation
score says how cleanly that group stands apart from the rest. Clean data has modes too
(one per question type), so a cut only counts when its target group is a plausible
poisoning rate and actually stands apart (see the target-weight bounds and ``max_overlap``).
"""

import math
import numbers
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator

from .mixture_1d import bin_statistics, fit_1d_mixture, fit_binned_mixtures_on, single_threaded

#: mixture="auto" fits head by head with scikit-learn up to this many samples x heads (about 30 s
#: on 2 cores at 0.7 s a head per 100k samples), all heads at once on binned statistics above.
AUTO_BINNED_ABOVE = 4_000_000
#: A head whose shares span less than this is constant: it cannot separate anything.
CONSTANT_RANGE = 1e-12
#: The overlap integral runs over [-GRID_PAD, 1 + GRID_PAD] so that component tails
#: spilling past the min-max range of the data are counted.
GRID_PAD = 0.1


@dataclass(frozen=True)
class HeadMixture:
    """One head's selected mixture, on the min-max normalised scale.

    Enough to draw the head's histogram with its components (UI) and to vote on
    new samples with the scaling learned in ``fit``.
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    is_target: np.ndarray
    data_min: float
    data_max: float

    def normalise(self, shares):
        """Apply the min-max scaling learned in fit (new data may fall outside [0, 1])."""
        return (np.asarray(shares, dtype=float) - self.data_min) / (self.data_max - self.data_min)

    def component_log_density(self, x):
        """log(w_k N(x; mu_k, var_k)) for normalised x, shape (len(x), K)."""
        x = np.asarray(x, dtype=float)[:, None]
        return (
            np.log(self.weights)
            - 0.5 * np.log(2 * np.pi * self.variances)
            - 0.5 * (x - self.means) ** 2 / self.variances
        )

    def target_posterior(self, shares):
        """Posterior mass of the target group for raw shares; 0 for a head with no target."""
        shares = np.asarray(shares, dtype=float)
        if not self.is_target.any():
            return np.zeros(shares.shape[0])
        log_dens = self.component_log_density(self.normalise(shares))
        return np.exp(logsumexp(log_dens[:, self.is_target], axis=1) - logsumexp(log_dens, axis=1))


def _layer_count(last_layers, n_layers):
    """Number of last layers kept by the layer filter: an int, or a fraction rounded up."""
    if isinstance(last_layers, bool):
        raise ValueError("last_layers must be a number of layers or a fraction, not a bool")
    if isinstance(last_layers, numbers.Integral):
        if last_layers < 1:
            raise ValueError(f"last_layers must be >= 1, got {last_layers}")
        return min(int(last_layers), n_layers)
    if isinstance(last_layers, numbers.Real) and 0 < last_layers <= 1:
        return math.ceil(last_layers * n_layers)
    raise ValueError(f"last_layers must be an int >= 1 or a float in (0, 1], got {last_layers!r}")


def _best_split(mixture, grid, eps, target_weight_range, max_overlap):
    """Best cut of the mean-sorted components into target (lighter side) and background.

    Only cuts whose target weight lies in ``target_weight_range`` and whose overlap is at
    most ``max_overlap`` times the target weight count. Returns (is_target per component,
    separation score, target weight); score 0 and no target when no cut counts.
    """
    order = np.argsort(mixture.means)
    below = np.cumsum(np.exp(mixture.component_log_density(grid)).T[order], axis=0)
    weight_below = np.cumsum(mixture.weights[order])
    best = (np.zeros(len(order), dtype=bool), 0.0, 0.0)
    for cut in range(1, len(order)):
        low_is_target = weight_below[cut - 1] < 0.5  # ties: the upper side is the target
        target_weight = weight_below[cut - 1] if low_is_target else 1.0 - weight_below[cut - 1]
        if not target_weight_range[0] <= target_weight <= target_weight_range[1]:
            continue
        overlap = np.trapezoid(np.minimum(below[cut - 1], below[-1] - below[cut - 1]), grid)
        if overlap > max_overlap * target_weight:
            continue
        score = 1.0 / (overlap + eps)
        if score > best[1]:
            is_target = np.zeros(len(order), dtype=bool)
            is_target[order[:cut] if low_is_target else order[cut:]] = True
            best = (is_target, score, target_weight)
    return best


def _gap(mixture, is_target):
    """How far the target group stands from the background, in component widths:
    min over (target, background) pairs of |mu_t - mu_b| / (sigma_t + sigma_b)."""
    sd = np.sqrt(mixture.variances)
    t, b = np.flatnonzero(is_target), np.flatnonzero(~is_target)
    return float(np.min(np.abs(mixture.means[t, None] - mixture.means[None, b]) / (sd[t, None] + sd[None, b])))


def _share_in(group, anchor):
    """|group & anchor| / |group|: how much of a head's group the anchor holds."""
    return float((group & anchor).sum() / group.sum()) if group.sum() else 0.0


def _overlap_coefficient(a, b):
    """|A & B| / min(|A|, |B|): 1 when one head's target set contains the other's."""
    smaller = min(a.sum(), b.sum())
    return float((a & b).sum() / smaller) if smaller else 0.0


class HeadProfiler(BaseEstimator):
    """Find trigger-responsive heads from the system share alpha_sys of every head.

    Parameters
    ----------
    max_components : int, default 5
        Largest K tried per head (METHOD.md: K = 1..5); K* is the lowest-AIC one.
    last_layers : int or float, default 1.0
        Layer filter: an int keeps that many last layers, a float in (0, 1] that
        fraction of the layers, rounded up. The paper reports the trigger signal in
        deep layers of 28-32-layer models; in the 4-layer demo model the trigger heads
        sit in the first layer, and 0.5 drops them (F1 0.00), so the default keeps every
        layer. Set 0.5 (or a count) for large models, as the paper does.
    top_heads : int, default 8
        Number of candidate heads kept, by separation score. Several heads are needed
        for the EM vote to outvote a head that split on question type.
    eps : float, default 1e-3
        Added to the overlap in SS = 1 / (overlap + eps); caps SS at 1/eps so perfectly
        separated heads tie instead of being ranked by numerical noise.
    grid_size : int, default 2048
        Points of the grid on which the overlap integral is computed.
    tau_vote : float, default 0.5
        A head votes "target" when the target group's posterior exceeds this.
    min_target_weight : float, default 0.01
    max_target_weight : float, default 0.2
        A cut counts only if its target group weighs within these bounds. Below: a
        component on a handful of outliers; SS uses weighted densities, so the overlap
        is at most the target weight and such a group gets a high SS for free (with
        heavy-tailed shares these outrank real trigger heads). Above: a clean question
        type; METHOD.md's rule alone (any weight up to 0.5) splits clean multimodal data
        by question type. The bounds are an assumed poisoning rate of 1% to 20% (the
        paper poisons 10%); widen them when that assumption is wrong.
    max_overlap : float, default 0.1
        A cut counts only if at most this fraction of the target group's mass lies
        under the background density (overlap / target weight). AIC happily splits a
        single skewed bump into components; its tail is not a separate group. 0.1 gave
        no false selection on unimodal noise in our simulations; 0.15 let some through.
    min_agreement : float, default 0.5
        Heads are ranked by SS (to 0.1% of its cap), ties by ``gap_``; the first is the anchor, and a head is
        selected only if its target set overlaps the anchor's by at least this fraction
        of the smaller set. Dawid-Skene assumes heads err independently; heads that
        single out *different* groups (a trigger and a clean minority) break that and
        the larger camp wins the vote. 0 turns the check off.
    random_state : int, default 0
        Seed of every mixture fit (scikit-learn's k-means start).
    mixture : {"auto", "sklearn", "binned"}, default "auto"
        How the 1-D mixtures are fitted. "sklearn": scikit-learn's GaussianMixture, head by head
        (about 0.7 s a head at 100k samples). "binned": every head at once on binned sufficient
        statistics (:func:`fit_binned_mixtures`), for thousands of heads x 100k samples; its K*
        agree with scikit-learn's about as often as scikit-learn's agree across two seeds
        (docs/PERFORMANCE.md, docs/METHOD_CHOICES.md). "auto": scikit-learn up to
        ``AUTO_BINNED_ABOVE`` samples x heads, binned above (a 7B model's 1024 heads x 100k
        samples: 12 minutes head by head on 2 cores).

    Attributes
    ----------
    n_components_ : (L, H) int, K* per head; 0 for a constant head (nothing fitted).
    aic_ : (L, H, max_components) AIC of each K; NaN where not fitted.
    separation_ : (L, H) SS of the best cut; 0 when no cut counts (K* = 1 included):
        the head is not responsive.
    target_weight_ : (L, H) total weight of the target group; 0 for non-responsive heads.
    gap_ : (L, H) distance of the target group from the background: min over (target,
        background) component pairs of |mu_t - mu_b| / (sigma_t + sigma_b); 0 for
        non-responsive heads. Breaks ties between heads at the SS cap: the larger gap is
        the stronger takeover of the head.
    weights_, means_, variances_ : (L, H, max_components) selected mixture, zero-padded.
    target_components_ : (L, H, max_components) bool, components forming the target group.
    data_min_, data_max_ : (L, H) min-max scaling learned per head.
    layer_filter_ : (L,) bool, layers allowed by ``last_layers``.
    candidate_ : (L, H) bool, responsive (SS > 0) heads inside the layer filter.
    agreement_ : (L, H) overlap of each candidate's target set with the anchor's (the overlap
        coefficient with the best head's; with an anchor given to ``fit``, the share of the head's
        set that the anchor holds); NaN for non-candidates.
    selected_ : (L, H) bool, the top ``top_heads`` candidates that agree with the anchor.
    selected_heads_ : list of (layer, head), by SS then gap, descending (the anchor first).
    mixture_ : "sklearn" or "binned", how the mixtures were fitted (``mixture="auto"`` chooses).
    """

    def __init__(
        self,
        max_components=5,
        last_layers=1.0,
        top_heads=8,
        eps=1e-3,
        grid_size=2048,
        tau_vote=0.5,
        min_target_weight=0.01,
        max_target_weight=0.2,
        max_overlap=0.1,
        min_agreement=0.5,
        random_state=0,
        mixture="auto",
    ):
        self.max_components = max_components
        self.last_layers = last_layers
        self.top_heads = top_heads
        self.eps = eps
        self.grid_size = grid_size
        self.tau_vote = tau_vote
        self.min_target_weight = min_target_weight
        self.max_target_weight = max_target_weight
        self.max_overlap = max_overlap
        self.min_agreement = min_agreement
        self.random_state = random_state
        self.mixture = mixture

    def fit(self, shares, anchor=None):
        """Profile every head of ``shares`` (M samples, L layers, H heads).

        ``anchor``: (M,) bool votes of an independent, label-free signal (e.g. the base model
        finding a response implausible). Heads are then kept when most of their target group
        (``min_agreement``) is in it, rather than agreeing with the best-ranked head: heads that
        single out a clean content group, however well separated, or a wider group the anchored
        samples sit in (every "blue" answer, for a backdoor whose target is "blue"), are not selected.
        """
        shares = np.asarray(shares, dtype=float)
        if shares.ndim != 3:
            raise ValueError(f"shares must be (M, L, H), got shape {shares.shape}")
        _, n_layers, n_heads = shares.shape
        k_max = self.max_components
        grid = np.linspace(-GRID_PAD, 1 + GRID_PAD, self.grid_size)

        self.n_components_ = np.zeros((n_layers, n_heads), dtype=int)
        self.aic_ = np.full((n_layers, n_heads, k_max), np.nan)
        self.separation_ = np.zeros((n_layers, n_heads))
        self.target_weight_ = np.zeros((n_layers, n_heads))
        self.gap_ = np.zeros((n_layers, n_heads))
        self.weights_ = np.zeros((n_layers, n_heads, k_max))
        self.means_ = np.zeros((n_layers, n_heads, k_max))
        self.variances_ = np.zeros((n_layers, n_heads, k_max))
        self.target_components_ = np.zeros((n_layers, n_heads, k_max), dtype=bool)
        self.data_min_ = shares.min(axis=0)
        self.data_max_ = shares.max(axis=0)

        if self.mixture not in ("auto", "sklearn", "binned"):
            raise ValueError(f"mixture must be 'auto', 'sklearn' or 'binned', got {self.mixture!r}")
        self.mixture_ = self.mixture if self.mixture != "auto" else (
            "binned" if shares.shape[0] * n_layers * n_heads > AUTO_BINNED_ABOVE else "sklearn")
        span = self.data_max_ - self.data_min_
        varying = span >= CONSTANT_RANGE  # a constant head cannot separate anything: nothing fitted
        x = (shares - self.data_min_) / np.where(varying, span, 1.0)
        if self.mixture_ == "binned" and varying.any():
            flat = x.reshape(len(x), -1)[:, varying.ravel()]
            stats = bin_statistics(flat)
            fits = [fit_binned_mixtures_on(stats, k, random_state=self.random_state) for k in range(1, k_max + 1)]
            per_head = {(int(l), int(h)): [(w[j], m[j], v[j], aic[j]) for w, m, v, aic in fits if np.isfinite(aic[j])]
                        for j, (l, h) in enumerate(np.argwhere(varying))}
        with single_threaded():
            for layer, head in np.argwhere(varying):
                head_fits = per_head[layer, head] if self.mixture_ == "binned" else self._sklearn_fits(x[:, layer, head])
                self._store_head(layer, head, head_fits, grid)

        self.layer_filter_ = np.zeros(n_layers, dtype=bool)
        self.layer_filter_[n_layers - _layer_count(self.last_layers, n_layers) :] = True
        self.candidate_ = self.layer_filter_[:, None] & (self.separation_ > 0)
        if anchor is not None:
            anchor = np.asarray(anchor, dtype=bool)
            if anchor.shape != (len(shares),):
                raise ValueError(f"anchor must be one vote per sample, shape ({len(shares)},), got {anchor.shape}")
        self._select(shares, anchor)
        return self

    def _select(self, shares, anchor=None):
        """Rank the candidates, anchor on the first (or on `anchor`), keep the top heads that agree with it."""
        n_layers, n_heads = self.candidate_.shape
        # SS is compared to 0.1% of its cap 1/eps: heads at the cap differ only by numerical noise
        ss_level = np.round(self.separation_.ravel() * self.eps, 3)
        ranked = np.lexsort((-self.gap_.ravel(), -ss_level))  # stable: remaining ties by index
        ranked = [r for r in ranked if self.candidate_.flat[r]]
        self.agreement_ = np.full((n_layers, n_heads), np.nan)
        self.selected_ = np.zeros((n_layers, n_heads), dtype=bool)
        self.selected_heads_ = []
        external = anchor is not None
        for r in ranked:
            layer, head = (int(i) for i in np.unravel_index(r, (n_layers, n_heads)))
            votes = self.head_mixture(layer, head).target_posterior(shares[:, layer, head]) > self.tau_vote
            anchor = votes if anchor is None else anchor
            # another head's group may nest in this one (two trigger heads catching different parts of
            # the poisons); an independent anchor's group is the suspects, so most of the head's group
            # must be among them: a head singling out a wider content group they sit in adds clean samples
            self.agreement_[layer, head] = _share_in(votes, anchor) if external else _overlap_coefficient(votes, anchor)
            if self.agreement_[layer, head] >= self.min_agreement and len(self.selected_heads_) < self.top_heads:
                self.selected_[layer, head] = True
                self.selected_heads_.append((layer, head))

    def _sklearn_fits(self, x):
        """(weights, means, variances, AIC) for K = 1..max_components on one head's scaled values."""
        n_fits = min(self.max_components, len(np.unique(x)))
        fits = [fit_1d_mixture(x, k, self.random_state) for k in range(1, n_fits + 1)]
        return [(gm.weights_, gm.means_[:, 0], gm.covariances_, gm.aic(x[:, None])) for gm in fits]

    def _store_head(self, layer, head, fits, grid):
        """Keep the lowest-AIC fit of one head and split it into target and background."""
        aic = np.array([fit[3] for fit in fits])
        weights, means, variances, _ = fits[int(np.argmin(aic))]
        k = len(weights)
        mixture = HeadMixture(
            weights=weights,
            means=means,
            variances=variances,
            is_target=np.zeros(k, dtype=bool),
            data_min=self.data_min_[layer, head],
            data_max=self.data_max_[layer, head],
        )
        is_target, score, target_weight = _best_split(
            mixture, grid, self.eps, (self.min_target_weight, self.max_target_weight), self.max_overlap
        )
        self.aic_[layer, head, :len(aic)] = aic
        self.n_components_[layer, head] = k
        self.weights_[layer, head, :k] = mixture.weights
        self.means_[layer, head, :k] = mixture.means
        self.variances_[layer, head, :k] = mixture.variances
        self.target_components_[layer, head, :k] = is_target
        self.separation_[layer, head] = score
        self.target_weight_[layer, head] = target_weight
        if is_target.any():
            self.gap_[layer, head] = _gap(mixture, is_target)

    def head_mixture(self, layer, head):
        """The fitted mixture of one head (any head, selected or not)."""
        k = self.n_components_[layer, head]
        return HeadMixture(
            weights=self.weights_[layer, head, :k].copy(),
            means=self.means_[layer, head, :k].copy(),
            variances=self.variances_[layer, head, :k].copy(),
            is_target=self.target_components_[layer, head, :k].copy(),
            data_min=float(self.data_min_[layer, head]),
            data_max=float(self.data_max_[layer, head]),
        )

    def target_posterior(self, shares):
        """(M, n_selected) posterior of each selected head's target group, in selection order."""
        shares = np.asarray(shares, dtype=float)
        columns = [self.head_mixture(l, h).target_posterior(shares[:, l, h]) for l, h in self.selected_heads_]
        return np.column_stack(columns) if columns else np.zeros((shares.shape[0], 0))

    def votes(self, shares):
        """(M, n_selected) 0/1 votes: 1 where a selected head puts the sample in its target group."""
        return (self.target_posterior(shares) > self.tau_vote).astype(int)
