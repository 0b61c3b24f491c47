"""Binary Dawid-Skene aggregation of head votes (METHOD.md section 4).

Heads are noisy annotators: some split on the trigger, others on question type.
Estimating each head's reliability jointly with the latent label lets the
reliable heads outvote the others, and the reliabilities explain each flag.
"""

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator


#: Where EM may start; see ``DawidSkene``.
INITS = ("both", "soft", "majority")


class DawidSkene(BaseEstimator):
    """Two-class Dawid-Skene model fitted by EM; class 1 is "poisoned".

    Parameters
    ----------
    max_iter : int, default 100
        Maximum number of E/M rounds.
    tol : float, default 1e-6
        Stop when the *per-sample* log-likelihood changes by less than this, so the
        tolerance means the same for 2 000 and 100 000 samples.
    smoothing : float, default 1e-2
        Pseudo-count added to each outcome in the M step (a Beta(1+s, 1+s) prior), so
        no rate reaches exactly 0 or 1 and a single vote cannot make a log-odds infinite.
    init : {"both", "soft", "majority"}, default "both"
        Where EM starts (METHOD.md: "from the majority vote"). "soft": the fraction of
        annotators voting poisoned; "majority": poisoned when at least half of them do (a
        tie counts as poisoned); "both": EM from each, keep the higher likelihood, and on
        equal likelihood the fit that flags more. The start matters when the votes cannot
        decide: two heads whose target sets nest (one catches half the poisons, the other
        all of them) fit the intersection and the union equally well, and EM stays near
        where it starts; the soft start ends on the intersection. Preferring the union
        favours recall: a reviewer rejects a false flag in one click, a missed poison keeps
        the backdoor (text prefix, docs/METHOD_CHOICES.md: F1 0.68 -> 1.00). The majority
        start alone fails when trigger heads are fewer than half of the selected heads.

    Attributes
    ----------
    posterior_ : (M,) P(z_i = poisoned | votes) on the fitted votes.
    prior_ : float, P(z = poisoned).
    sensitivity_ : (J,) P(v = 1 | poisoned) per annotator.
    specificity_ : (J,) P(v = 0 | clean) per annotator.
    n_iter_ : int, E/M rounds run.
    log_likelihood_ : float, total log-likelihood of the votes at the end.

    Label switching: EM is symmetric in the two classes. After convergence, class 1
    must be the one the votes point to: annotators vote 1 *more* often for it, i.e.
    the mean Youden index (sensitivity + specificity - 1) is positive. If it is
    negative the classes are swapped. With no annotators (J = 0) there is nothing to
    single out: the prior is 0, every posterior is 0 and nothing is flagged.
    """

    def __init__(self, max_iter=100, tol=1e-6, smoothing=1e-2, init="both"):
        self.max_iter = max_iter
        self.tol = tol
        self.smoothing = smoothing
        self.init = init

    def fit(self, votes):
        """Estimate the latent labels and annotator rates from (M, J) 0/1 votes."""
        votes = self._check_votes(votes)
        n_samples, n_annotators = votes.shape
        self.n_iter_ = 0
        if n_annotators == 0:
            self.prior_ = 0.0
            self.sensitivity_ = np.zeros(0)
            self.specificity_ = np.zeros(0)
            self.posterior_ = np.zeros(n_samples)
            self.log_likelihood_ = 0.0
            return self

        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        mean = votes.mean(axis=1)
        starts = {"soft": mean, "majority": (mean >= 0.5).astype(float)}
        best = None
        for name in (("soft", "majority") if self.init == "both" else (self.init,)):
            fitted = self._em(votes, starts[name])
            # the better fit wins; equal fits (to 1e-4 nats a sample) go to the one flagging more
            key = (round(fitted[1] / n_samples, 4), int((fitted[0] > 0.5).sum()))
            if best is None or key > best[0]:
                best = (key, fitted)
        (self.posterior_, self.log_likelihood_, self.prior_, self.sensitivity_, self.specificity_,
         self.n_iter_) = best[1]
        return self

    def _em(self, votes, posterior):
        """EM from one start: (posterior, log-likelihood, prior, sensitivity, specificity, rounds)."""
        previous, rounds = -np.inf, 0
        for rounds in range(1, self.max_iter + 1):
            self._m_step(votes, posterior)
            posterior, log_likelihood = self._e_step(votes)
            if abs(log_likelihood - previous) / len(votes) < self.tol:
                break
            previous = log_likelihood
        prior, sensitivity, specificity = self.prior_, self.sensitivity_, self.specificity_
        if np.mean(sensitivity + specificity - 1) < 0:
            prior, sensitivity, specificity = 1 - prior, 1 - specificity, 1 - sensitivity
            posterior = 1 - posterior
        return posterior, float(log_likelihood), prior, sensitivity, specificity, rounds

    def predict_proba(self, votes):
        """P(poisoned) for new (M, J) votes under the fitted rates."""
        votes = self._check_votes(votes)
        if votes.shape[1] != len(self.sensitivity_):
            raise ValueError(f"expected {len(self.sensitivity_)} annotators, got {votes.shape[1]}")
        if votes.shape[1] == 0:
            return np.zeros(votes.shape[0])
        return self._e_step(votes)[0]

    def log_likelihood_ratios(self):
        """(J, 2) log P(v | poisoned) - log P(v | clean) for v = 0 (column 0) and v = 1 (column 1).

        The posterior log-odds of a sample is the prior log-odds plus, per annotator,
        the entry of its vote: this is how much each head pushed the sample.
        """
        sens, spec = self.sensitivity_, self.specificity_
        return np.column_stack([np.log((1 - sens) / spec), np.log(sens / (1 - spec))])

    @staticmethod
    def _check_votes(votes):
        votes = np.asarray(votes)
        if votes.ndim != 2:
            raise ValueError(f"votes must be (M, J), got shape {votes.shape}")
        if not np.isin(votes, (0, 1)).all():
            raise ValueError("votes must be 0 or 1")
        return votes.astype(float)

    def _m_step(self, votes, posterior):
        s = self.smoothing
        poisoned, clean = posterior.sum(), (1 - posterior).sum()
        self.prior_ = float((poisoned + s) / (len(posterior) + 2 * s))
        self.sensitivity_ = (posterior @ votes + s) / (poisoned + 2 * s)
        self.specificity_ = ((1 - posterior) @ (1 - votes) + s) / (clean + 2 * s)

    def _e_step(self, votes):
        """Posterior and total log-likelihood under the current parameters."""
        llr = self.log_likelihood_ratios()
        log_clean = votes @ np.log(1 - self.specificity_) + (1 - votes) @ np.log(self.specificity_)
        log_odds = np.log(self.prior_ / (1 - self.prior_)) + llr[:, 0].sum() + votes @ (llr[:, 1] - llr[:, 0])
        log_joint_clean = np.log(1 - self.prior_) + log_clean
        log_likelihood = np.sum(log_joint_clean + np.logaddexp(0, log_odds))
        return expit(log_odds), log_likelihood
