"""scikit-learn >= 1.4 behaviour on top of Debian 12's scikit-learn 1.2.1 (numpy 1.24, scipy 1.10).

MTEB 2 requires scikit-learn >= 1.4, which cannot be installed here. Two of its changes matter to
amalgam's evaluation engine, and both are small enough to port (from scikit-learn's source):

1. LogisticRegression(solver="lbfgs") minimises the MEAN loss (sklearn/linear_model/_linear_loss.py:
   LinearModelLoss.loss_gradient divides the summed loss and the pointwise gradient by
   sw_sum = n_samples) with l2_reg_strength = 1 / (C * sw_sum), and calls scipy's L-BFGS-B with
   options maxiter, maxls=50, gtol=tol, ftol=64 * eps (sklearn/linear_model/_logistic.py,
   _logistic_regression_path). 1.2 minimises the sum with l2_reg_strength = 1 / C and scipy's
   default ftol / maxls.
2. k-means++ (sklearn/cluster/_kmeans.py, _kmeans_plusplus) draws the first centre with
   random_state.choice(n_samples, p=sample_weight / sample_weight.sum()) (1.3+, with
   MiniBatchKMeans passing unit float32 weights of the init subset) instead of
   random_state.randint(n_samples), and weighs the potentials by the sample weights
   (closest_dist_sq @ sample_weight). The cumulative D² table stays stable_cumsum (float64)
   through 1.7. MiniBatchKMeans itself is otherwise unchanged from 1.2 to 1.7.

Used by gen_fixture.py. `patch_kmeans()` installs the k-means++ port into 1.2's module so that
MiniBatchKMeans runs as 1.4 does; `unpatch_kmeans()` restores 1.2.
"""
import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss
from sklearn.cluster import _kmeans
from sklearn.linear_model._linear_loss import LinearModelLoss
from sklearn.metrics.pairwise import _euclidean_distances
from sklearn.utils.extmath import stable_cumsum

_kmeans_plusplus_12 = _kmeans._kmeans_plusplus


class LogisticRegression14:
    """LogisticRegression(penalty="l2", C, solver="lbfgs", max_iter, tol, fit_intercept=True) of
    scikit-learn >= 1.4 for dense float input: binary = one weight row (HalfBinomialLoss),
    K > 2 = multinomial."""

    def __init__(self, C=1.0, max_iter=100, tol=1e-4):
        self.C, self.max_iter, self.tol = C, max_iter, tol

    def fit(self, X, y):
        X = np.asarray(X, dtype=np.float64)
        self.classes_, yi = np.unique(y, return_inverse=True)
        n, dim = X.shape
        k = self.classes_.size
        if k == 2:
            loss = LinearModelLoss(base_loss=HalfBinomialLoss(), fit_intercept=True)
            w0 = np.zeros(dim + 1)
        else:
            loss = LinearModelLoss(base_loss=HalfMultinomialLoss(n_classes=k), fit_intercept=True)
            w0 = np.zeros((k, dim + 1), order="F").ravel(order="F")
        sw_sum = n
        l2 = 1.0 / (self.C * sw_sum)
        target = yi.astype(np.float64)

        def func(w):
            # 1.2's LinearModelLoss sums; >= 1.4 divides the loss and the pointwise gradient by
            # sw_sum before adding the penalty
            f, g = loss.loss_gradient(w, X, target, None, 0.0, 1)
            f, g = f / sw_sum, g / sw_sum
            if k == 2:
                wt = w[:dim]
                f += 0.5 * l2 * (wt @ wt)
                g[:dim] += l2 * wt
            else:
                c = w.reshape((k, dim + 1), order="F")
                f += 0.5 * l2 * np.sum(c[:, :dim] ** 2)
                gc = g.reshape((k, dim + 1), order="F")
                gc[:, :dim] += l2 * c[:, :dim]
                g = gc.ravel(order="F")
            return f, g

        res = scipy.optimize.minimize(func, w0, method="L-BFGS-B", jac=True,
                                      options={"maxiter": self.max_iter, "maxls": 50, "gtol": self.tol,
                                               "ftol": 64 * np.finfo(float).eps})
        self.n_iter_ = res.nit
        self.grad_ = res.jac
        if k == 2:
            self.coef_, self.intercept_ = res.x[None, :dim], res.x[dim:]
        else:
            c = res.x.reshape((k, dim + 1), order="F")
            self.coef_, self.intercept_ = c[:, :dim], c[:, dim]
        return self

    def decision_function(self, X):
        return np.asarray(X, dtype=np.float64) @ self.coef_.T + self.intercept_

    def predict(self, X):
        z = self.decision_function(X)
        if self.classes_.size == 2:
            return self.classes_[(z[:, 0] > 0).astype(int)]
        return self.classes_[z.argmax(axis=1)]


def _kmeans_plusplus_14(X, n_clusters, x_squared_norms, random_state, n_local_trials=None):
    # the 1.2 call signature (MiniBatchKMeans._init_centroids passes no weights); 1.4 passes the
    # init subset's unit weights in X's dtype
    sample_weight = np.ones(X.shape[0], dtype=X.dtype)
    n_samples, n_features = X.shape
    centers = np.empty((n_clusters, n_features), dtype=X.dtype)
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    center_id = random_state.choice(n_samples, p=sample_weight / sample_weight.sum())
    indices = np.full(n_clusters, -1, dtype=int)
    centers[0] = X[center_id].toarray() if sp.issparse(X) else X[center_id]
    indices[0] = center_id
    closest_dist_sq = _euclidean_distances(centers[0, np.newaxis], X, Y_norm_squared=x_squared_norms,
                                           squared=True)
    current_pot = closest_dist_sq @ sample_weight
    for c in range(1, n_clusters):
        rand_vals = random_state.uniform(size=n_local_trials) * current_pot
        candidate_ids = np.searchsorted(stable_cumsum(sample_weight * closest_dist_sq), rand_vals)
        np.clip(candidate_ids, None, closest_dist_sq.size - 1, out=candidate_ids)
        distance_to_candidates = _euclidean_distances(X[candidate_ids], X, Y_norm_squared=x_squared_norms,
                                                      squared=True)
        np.minimum(closest_dist_sq, distance_to_candidates, out=distance_to_candidates)
        candidates_pot = distance_to_candidates @ sample_weight.reshape(-1, 1)
        best_candidate = np.argmin(candidates_pot)
        current_pot = candidates_pot[best_candidate]
        closest_dist_sq = distance_to_candidates[best_candidate]
        best_candidate = candidate_ids[best_candidate]
        centers[c] = X[best_candidate].toarray() if sp.issparse(X) else X[best_candidate]
        indices[c] = best_candidate
    return centers, indices


def patch_kmeans():
    _kmeans._kmeans_plusplus = _kmeans_plusplus_14


def unpatch_kmeans():
    _kmeans._kmeans_plusplus = _kmeans_plusplus_12
