"""Tri-Component Attention Profiling: head profiling, then EM over the head votes.

The detector sees only attention profiles, never labels: ``fit`` has no ``y``.
"""

import numpy as np
import pandas as pd
from scipy.special import logit
from sklearn.base import BaseEstimator

from .dawid_skene import DawidSkene
from .head_profiler import HeadProfiler

#: Order of the last axis of a profile (METHOD.md section 2).
COMPONENTS = ("system", "vision", "query")
STATISTICS = ("system", "system_vs_vision")
TRANSFORMS = ("logit", "none")
#: Shares are clipped this far from 0 and 1 before the logit; attention can put all of a
#: head's mass on the image, and the logit of exactly 0 is not a number.
LOGIT_CLIP = 1e-6
#: TCAPDetector parameters by name. "paper": METHOD.md as written, without this project's
#: choices (docs/METHOD_CHOICES.md): the raw system share, the last half of the layers, any
#: minority up to half the samples, no overlap or anchor check, one head enough, EM from the
#: majority vote; the scan gives it no plausibility vote.
PRESETS = {
    "default": {},
    "paper": {"statistic": "system", "transform": "none", "last_layers": 0.5, "min_target_weight": 0.0,
              "max_target_weight": 0.5, "max_overlap": 1.0, "min_agreement": 0.0, "min_heads": 1,
              "init": "majority", "corroborate": False},
}
#: A selected head corroborates the group EM settled on when, by EM's own estimates, it votes for at
#: least this share of the group (sensitivity) and for at most 1 - CORROBORATING_SPECIFICITY of the
#: rest: a head singling out a wider content group the flagged samples sit in (every counting
#: question around a few 'one' answers) agrees with the group by nesting but does not corroborate it.
CORROBORATING_SENSITIVITY = 0.5
CORROBORATING_SPECIFICITY = 0.95


def _singles_out_a_group(votes, min_weight, max_weight):
    """A vote flags a share of the samples that a poisoned group could have (the heads' prior)."""
    return bool(min_weight <= votes.mean() <= max_weight)


def head_statistic(profiles, statistic="system_vs_vision", transform="logit"):
    """The per-head number TCAP profiles, (M, L, H), from (M, L, H, 3) profiles.

    "system" is METHOD.md's alpha_sys. "system_vs_vision" is alpha_sys / (alpha_sys + alpha_vis):
    the system share of the attention that is not on the user's question, so that wording and
    length of the questions (which move every component) stop splitting clean samples into modes.
    The logit spreads shares near 0 or 1, where a trigger that captures a head's attention
    puts the poisoned samples, into a group a 1-D mixture can isolate.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    system, vision = profiles[..., 0], profiles[..., 1]
    values = system if statistic == "system" else system / np.maximum(system + vision, LOGIT_CLIP)
    return logit(np.clip(values, LOGIT_CLIP, 1 - LOGIT_CLIP)) if transform == "logit" else values


class TCAPDetector(BaseEstimator):
    """Flag poisoned samples from their (M, L, H, 3) tri-component attention profiles.

    Parameters
    ----------
    threshold : float, default 0.5
        A sample is flagged when its posterior of being poisoned exceeds this.
    statistic : {"system_vs_vision", "system"}, default "system_vs_vision"
    transform : {"logit", "none"}, default "logit"
        What each head's mixture is fitted on (see :func:`head_statistic`). METHOD.md's
        literal choice is ("system", "none"); on the shipped demo it splits samples by
        question wording (F1 0.00) where the defaults give F1 1.00 (docs/METHOD_CHOICES.md).
    max_components, last_layers, top_heads, eps, grid_size, tau_vote,
    min_target_weight, max_target_weight, max_overlap, min_agreement, random_state, mixture :
        Passed to :class:`HeadProfiler` (see it for the defaults and why).
    min_heads : int, default 2
        Fewer selected heads than this flag nothing. EM judges each head by how it agrees with
        the others; one head has no other, so its split (on clean data, typically one image
        colour in an early layer) cannot be told from a trigger (docs/METHOD_CHOICES.md).
    max_iter, tol, smoothing, init :
        Passed to :class:`DawidSkene`.
    anchor_on_plausibility : bool, default True
        With a plausibility vote, choose the heads by agreement with it (see ``fit``). False only
        adds the vote to the EM as one more annotator, for the ablation (docs/PLAUSIBILITY.md:
        F1 0.53 against 0.99 anchored, outvoted by heads that agree on a clean group).
    corroborate : bool, default True
        Without a used plausibility vote, flag only a group that at least ``min_heads`` selected
        heads corroborate (``CORROBORATING_SENSITIVITY``, ``CORROBORATING_SPECIFICITY``): on a clean
        dataset (seed 2 of the report) one early head singled out 55 'one'/'two' answers and two heads
        on every counting and every position question agreed with it by nesting, so EM flagged the 55
        at posterior 1 (docs/LEVERS.md).

    Attributes
    ----------
    profiler_ : fitted HeadProfiler on the head statistic.
    em_ : fitted DawidSkene, or None when fewer than ``min_heads`` heads were selected or corroborate.
    votes_ : (M, n_selected) 0/1 votes of the selected heads, in selection order.
    plausibility_ : (M,) bool, the plausibility votes given to ``fit`` (None without them).
    vote_used_ : bool, whether they anchored the head selection and joined the EM (as the last
        annotator, after the heads): only when they single out a share of the samples a poisoned
        group could have, within [min_target_weight, max_target_weight] (the prior a head's target
        group has). A vote that finds almost nothing (a clean dataset's few odd answers, a target
        the base model finds plausible) or too much leaves the heads to their own anchor: anchored
        on three odd answers, a head whose content group holds two of them would be chosen.
    posterior_ : (M,) P(poisoned | votes); all 0 when fewer than ``min_heads`` heads were
        selected or corroborate EM's group, since then no group of heads agrees on a separated
        minority (the plausibility vote itself, when used).
    corroborating_ : (n_selected,) bool, the selected heads that corroborate EM's group (all False
        without EM).
    uncorroborated_ : bool, whether EM settled on a group that too few heads corroborate, or a single
        head was selected, so nothing was flagged (the app says so; a scan then judges each head's group
        by its trigger, ``pipeline.confirm``).
    flagged_ : (M,) bool, posterior_ > threshold.

    Known limitation: a clean question type lighter than ``max_target_weight`` that
    moves the deep heads is, from the shares alone, a separated minority exactly like a
    poisoned group, and all heads agree on it, so EM cannot discount it: it is flagged.
    Heavier question types are kept out only by the ``max_target_weight`` prior, not by
    EM. The heads table and ``head_contributions`` are there for a reviewer to see it.
    """

    def __init__(
        self,
        threshold=0.5,
        statistic="system_vs_vision",
        transform="logit",
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
        min_heads=2,
        max_iter=100,
        tol=1e-6,
        smoothing=1e-2,
        init="both",
        mixture="auto",
        anchor_on_plausibility=True,
        corroborate=True,
    ):
        self.threshold = threshold
        self.statistic = statistic
        self.transform = transform
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
        self.min_heads = min_heads
        self.max_iter = max_iter
        self.tol = tol
        self.smoothing = smoothing
        self.init = init
        self.mixture = mixture
        self.anchor_on_plausibility = anchor_on_plausibility
        self.corroborate = corroborate

    def fit(self, profiles, plausibility=None):
        """Profile every head's statistic and aggregate the selected heads' votes.

        ``plausibility``: optional (M,) bool, the base model finding each response implausible
        (``PlausibilityVote``; no label). Given, it anchors head selection (the heads whose group
        agrees with it, not with the best-ranked head: heads on a clean content group drop out)
        and joins the EM as one more annotator; with fewer than ``min_heads`` agreeing heads it
        decides alone. Only a vote that singles out a plausible poisoned share is used (``vote_used_``).
        """
        profiles = np.asarray(profiles, dtype=float)
        if profiles.ndim != 4 or profiles.shape[-1] != len(COMPONENTS):
            raise ValueError(f"profiles must be (M, L, H, {len(COMPONENTS)}), got shape {profiles.shape}")
        shares = head_statistic(profiles, self.statistic, self.transform)
        profiler_params = {name: getattr(self, name) for name in HeadProfiler().get_params()}
        self.plausibility_ = None if plausibility is None else np.asarray(plausibility, dtype=bool)
        self.vote_used_ = self.plausibility_ is not None and _singles_out_a_group(
            self.plausibility_, self.min_target_weight, self.max_target_weight)
        vote = self._vote()
        self.profiler_ = HeadProfiler(**profiler_params).fit(
            shares, anchor=vote if self.anchor_on_plausibility else None)
        self.votes_ = self.profiler_.votes(shares)
        n_selected = self.votes_.shape[1]
        self.corroborating_ = np.zeros(n_selected, dtype=bool)
        self.uncorroborated_ = False
        if n_selected < max(self.min_heads, 1):
            self.em_ = None
            self.posterior_ = np.zeros(len(profiles)) if vote is None else vote.astype(float)
            # a lone head's group is no finding, but it is one no other head corroborates: judged as such
            self.uncorroborated_ = self.corroborate and vote is None and n_selected > 0
        else:
            annotators = self.votes_ if vote is None else np.column_stack([self.votes_, vote.astype(self.votes_.dtype)])
            self.em_ = DawidSkene(max_iter=self.max_iter, tol=self.tol, smoothing=self.smoothing,
                                 init=self.init).fit(annotators)
            self.posterior_ = self.em_.posterior_
            self.corroborating_ = ((self.em_.sensitivity_[:n_selected] >= CORROBORATING_SENSITIVITY)
                                   & (self.em_.specificity_[:n_selected] >= CORROBORATING_SPECIFICITY))
            if self.corroborate and vote is None and self.corroborating_.sum() < max(self.min_heads, 1):
                self.em_, self.posterior_ = None, np.zeros(len(profiles))  # agreeing only by nesting: no group
                self.uncorroborated_ = True
        self.flagged_ = self.posterior_ > self.threshold
        return self

    def next_candidates(self):
        """(layer, head) of the candidate heads not selected, by separation score. Where the selected
        heads' group turns out to be content, the backdoor may sit in one of these."""
        p = self.profiler_
        chosen = set(map(tuple, p.selected_heads_))
        order = [tuple(int(i) for i in np.unravel_index(flat, p.separation_.shape))
                 for flat in np.argsort(-p.separation_, axis=None, kind="stable")]
        return [(l, h) for l, h in order if p.candidate_[l, h] and (l, h) not in chosen]

    def next_heads(self, profiles, n):
        """The first ``n`` of ``next_candidates``, as ``head_groups`` gives them."""
        return self.head_groups(profiles, self.next_candidates()[:n])

    def head_groups(self, profiles, heads):
        """Each of ``heads`` alone, as (layer, head, posterior, votes): its target group's posterior and
        0/1 votes on ``profiles`` (the ones ``fit`` saw)."""
        return list(self.iter_head_groups(profiles, heads))

    def iter_head_groups(self, profiles, heads):
        """``head_groups`` one head at a time, for a walk that may stop early: a posterior per sample
        for every candidate head at once would hold hundreds of them at 100k samples."""
        shares = head_statistic(np.asarray(profiles, dtype=float), self.statistic, self.transform)
        for l, h in heads:
            posterior = self.profiler_.head_mixture(l, h).target_posterior(shares[:, l, h])
            yield int(l), int(h), posterior, (posterior > self.tau_vote).astype(int)

    def _vote(self):
        """The plausibility votes as the detector uses them: None when not given or not used."""
        return self.plausibility_ if self.vote_used_ else None

    def heads_table(self):
        """One row per head: its mixture, separation, filters and (if selected) reliability."""
        p = self.profiler_
        n_layers, n_heads = p.n_components_.shape
        layer, head = np.indices((n_layers, n_heads)).reshape(2, -1)
        sensitivity = np.full((n_layers, n_heads), np.nan)
        specificity = np.full((n_layers, n_heads), np.nan)
        if self.em_ is not None:
            rows, cols = np.array(p.selected_heads_).T
            sensitivity[rows, cols] = self.em_.sensitivity_[:len(rows)]
            specificity[rows, cols] = self.em_.specificity_[:len(rows)]
        table = {"layer": layer, "head": head, "k": p.n_components_.ravel()}
        table.update({f"aic_{k + 1}": p.aic_[..., k].ravel() for k in range(p.aic_.shape[-1])})
        table.update(
            separation=p.separation_.ravel(),
            candidate=p.candidate_.ravel(),
            selected=p.selected_.ravel(),
            sensitivity=sensitivity.ravel(),
            specificity=specificity.ravel(),
            target_weight=p.target_weight_.ravel(),
            gap=p.gap_.ravel(),
            agreement=p.agreement_.ravel(),
        )
        return pd.DataFrame(table)

    def signal_weights(self):
        """Which signals voted and how much each weighed: one row per EM annotator (the selected
        heads, then the plausibility vote as layer and head -1).

        ``weight`` is the log diagnostic odds ratio, llr(vote 1) - llr(vote 0): how far the
        posterior log-odds of a sample moves between the signal's "poisoned" and "clean" vote;
        ``share`` is its part of the sum over signals. When the plausibility vote decided alone it
        is the one row, share 1; with no signal at all the table is empty.
        """
        columns = ["layer", "head", "sensitivity", "specificity", "weight", "share"]
        if self.em_ is None:
            if self._vote() is None:
                return pd.DataFrame(columns=columns)
            return pd.DataFrame([[-1, -1, np.nan, np.nan, np.nan, 1.0]], columns=columns)
        layers, heads = (np.array(self.profiler_.selected_heads_).T if self.profiler_.selected_heads_
                         else (np.zeros(0, int), np.zeros(0, int)))
        if self._vote() is not None:
            layers, heads = np.append(layers, -1), np.append(heads, -1)
        llr = self.em_.log_likelihood_ratios()
        weight = np.maximum(llr[:, 1] - llr[:, 0], 0.0)  # a signal voting against the poisons carries none
        share = weight / weight.sum() if weight.sum() > 0 else np.full(len(weight), 1 / len(weight))
        return pd.DataFrame(dict(zip(columns, [layers, heads, self.em_.sensitivity_, self.em_.specificity_,
                                               weight, share])))

    def head_contributions(self, i):
        """Why sample i is (not) flagged: each selected head's vote and its push on the log-odds.

        ``llr`` is log(sens / (1 - spec)) for a "target" vote and log((1 - sens) / spec)
        otherwise; the posterior log-odds is the prior log-odds plus the sum of ``llr``. The
        plausibility vote, when given, is the row with layer and head -1; when it decided alone
        (too few heads agreed with it) it is the only row, with no reliabilities.
        """
        columns = ["layer", "head", "vote", "sensitivity", "specificity", "llr"]
        if self.em_ is None:
            if self._vote() is None:
                return pd.DataFrame(columns=columns)
            return pd.DataFrame([[-1, -1, int(self.plausibility_[i]), np.nan, np.nan, np.nan]], columns=columns)
        votes = self.votes_[i]
        layers, heads = np.array(self.profiler_.selected_heads_).T
        if self._vote() is not None:  # the base model's vote, as layer -1, head -1
            votes = np.append(votes, int(self.plausibility_[i]))
            layers, heads = np.append(layers, -1), np.append(heads, -1)
        llr = self.em_.log_likelihood_ratios()[np.arange(len(votes)), votes]
        values = [layers, heads, votes, self.em_.sensitivity_, self.em_.specificity_, llr]
        return pd.DataFrame(dict(zip(columns, values)))
