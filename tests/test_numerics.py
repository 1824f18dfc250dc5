"""Numeric building blocks against slow, obvious re-implementations and known answers."""
import numpy as np
import pytest

from siamdiag.engine import numerics


def test_block_means_keep_the_end_and_match_a_loop():
    x = np.arange(10.0)
    assert numerics.block_means(x, 4).tolist() == [np.mean(x[2:6]), np.mean(x[6:10])]
    assert numerics.block_means(x, 1).tolist() == x.tolist()


def test_nested_rss_matches_separate_least_squares():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 6))
    y = X[:, :3] @ [1.0, -2.0, 0.5] + rng.standard_normal(200)
    rss = numerics.nested_rss(y, X.T)
    for k in range(1, 7):
        coef, *_ = np.linalg.lstsq(X[:, :k], y, rcond=None)
        assert rss[k - 1] == pytest.approx(np.sum((y - X[:, :k] @ coef) ** 2), rel=1e-9)


def _qr_nested_rss(columns, target):
    """The nested fits' residual sums of squares from a Householder QR of the stacked columns."""
    r = np.linalg.qr(np.column_stack(list(columns) + [target]), mode="r")
    qty = r[:-1, -1]
    return r[-1, -1] ** 2 + np.append(np.cumsum((qty * qty)[::-1])[::-1][1:], 0.0)


@pytest.mark.parametrize("phi", [0.0, 0.9, 0.99, 1.0])   # white noise to a random walk
def test_nested_rss_of_lag_views_from_the_normal_equations_matches_a_qr(phi):
    rng = np.random.default_rng(1)
    x = np.zeros(900)
    for t in range(1, 900):
        x[t] = phi * x[t - 1] + rng.standard_normal()
    columns = numerics.lag_columns(x, 20)
    target = x[20:]
    assert numerics.normal_equations_factor(np.column_stack(columns + [target])) is not None
    np.testing.assert_allclose(numerics.nested_rss(target, columns), _qr_nested_rss(columns, target), rtol=1e-10)
    assert all(np.shares_memory(c, x) for c in columns)   # views, not copies
    assert [c[0] for c in columns[:3]] == [x[19], x[18], x[17]]   # lag k starts at x[20 - k]


@pytest.mark.filterwarnings("ignore:overflow encountered")   # the constant's own share of y, squared, as the QR has it
@pytest.mark.parametrize("series", ["noiseless decay", "nearly noiseless decay", "repeated column", "squares overflow"])
def test_nested_rss_leaves_nearly_dependent_columns_to_the_qr(series):
    """Where a column is (nearly) a combination of the ones before it, the normal equations would
    lose the digits that tell the fits apart, and where the squared norms overflow they have none:
    the QR's own bits come back (finite where the fits are)."""
    t = np.arange(600.0)
    x = np.exp(-t / 150.0)                                  # exactly x_t = c x_(t-1): lag 2 adds nothing
    if series == "nearly noiseless decay":
        x = x + 1e-7 * np.random.default_rng(2).standard_normal(600)
    columns = numerics.lag_columns(x, 5)
    if series == "repeated column":
        columns = [columns[0], columns[1], columns[1].copy()]
    if series == "squares overflow":   # a level near 1e160 beside a small wander: its square is inf, the fit is not
        x = 1e160 + 1e150 * np.random.default_rng(3).standard_normal(600)
        columns = [np.full(595, 1e160), x[4:-1]]
    target = x[5:]
    assert numerics.normal_equations_factor(np.column_stack(columns + [target])) is None
    rss = numerics.nested_rss(target, columns)
    assert rss.tolist() == _qr_nested_rss(columns, target).tolist() and np.isfinite(rss).all()


@pytest.mark.parametrize("series", ["white", "ar2", "persistent", "level far from zero", "noiseless decay"])
def test_ar_residuals_are_the_least_squares_residuals_at_the_chosen_order(series):
    """The prewhitening fit from the normal equations (or, for nearly dependent lags, the SVD)
    leaves the residuals np.linalg.lstsq leaves at the same order (bit for bit on the SVD's route)."""
    rng = np.random.default_rng(4)
    e = rng.standard_normal(1200)
    x = {"white": e, "ar2": np.convolve(e, [1.0, 0.6, 0.3], "same"),
         "persistent": np.cumsum(e) * 0.05 + e, "level far from zero": 1e5 + np.convolve(e, [1.0, 0.7], "same"),
         "noiseless decay": np.exp(-np.arange(1200) / 300.0)}[series]
    residuals, order = numerics.ar_residuals(x)
    y = x - x.mean()
    assert order > 0 or series == "white"
    if order:
        design = np.column_stack(numerics.lag_columns(y, order))
        coef, *_ = np.linalg.lstsq(design, y[order:], rcond=None)
        expected = y[order:] - design @ coef
        if series == "noiseless decay":
            assert numerics.normal_equations_factor(numerics.stacked(numerics.lag_columns(y, order), y[order:]),
                                                    numerics.FIT_MIN_NEW) is None
            assert residuals.tolist() == expected.tolist()
        else:
            np.testing.assert_allclose(residuals, expected, rtol=0, atol=1e-10 * np.abs(y).max())


def test_ar_order_recovers_an_ar2_process():
    from scipy.signal import lfilter

    orders = []
    for seed in range(20):
        e = np.random.default_rng(seed).standard_normal(3000)
        x = lfilter([1.0], [1.0, -0.5, 0.3], e)
        orders.append(numerics.ar_residuals(x)[1])
    assert np.mean(np.array(orders) == 2) >= 0.8


def test_tau_int_of_ar1_is_close_to_theory():
    # AR(1): tau_int = (1 + phi) / (1 - phi) = 3 for phi = 0.5 (averaged over seeds)
    from siamdiag.engine.synthetic import ar1

    taus = [numerics.integrated_autocorrelation_time(ar1(5000, np.random.default_rng(s), 0.5)) for s in range(30)]
    assert np.mean(taus) == pytest.approx(3.0, rel=0.1)
    white = [numerics.integrated_autocorrelation_time(np.random.default_rng(s).standard_normal(5000)) for s in range(30)]
    assert np.mean(white) == pytest.approx(1.0, abs=0.15)


def test_mser_finds_the_end_of_a_step_transient():
    rng = np.random.default_rng(3)
    y = np.concatenate([np.full(300, 5.0), np.zeros(1700)]) + 0.1 * rng.standard_normal(2000)
    assert 295 <= numerics.mser_truncation(y) <= 310


def test_winsorize_clips_only_outliers():
    x = np.zeros(1000) + np.random.default_rng(1).standard_normal(1000)
    x[10] = 1000.0
    w = numerics.winsorize(x)
    assert w[10] < 10
    assert np.array_equal(np.delete(w, 10), np.delete(x, 10))


def test_bartlett_lrv_of_white_noise_is_its_variance():
    x = np.random.default_rng(2).standard_normal(20000)
    assert numerics.bartlett_long_run_variance(x - x.mean(), 10) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("n", [2000, 2001, 2999, 4001, 20000])
def test_aggregated_window_covers_the_window_and_nothing_before_it(n):
    # Regression: for n just above 2,000 the blocks were 3 points long while the window
    # counted blocks of 2, so the 'window' reached back over 75 % of the run.
    from siamdiag.engine.prepare import Options, prepare_series

    p = prepare_series(np.arange(n, dtype=float), np.random.default_rng(0).standard_normal(n), Options())
    covered = len(p.agg_window) * p.window.block
    assert len(p.window_loss) - p.window.block < covered <= len(p.window_loss)
    assert len(p.agg) * p.window.block <= n


def test_two_segment_rss_equals_the_split_by_split_loop():
    from siamdiag.engine.checks import MIN_SEGMENT, two_segment_rss

    rng = np.random.default_rng(12)
    for n in (6, 7, 31, 200):
        values = rng.standard_normal(n) + 1e3 + 4.0 * (np.arange(n) > n // 3)
        slow = [np.sum((values[:k] - values[:k].mean()) ** 2) + np.sum((values[k:] - values[k:].mean()) ** 2)
                for k in range(MIN_SEGMENT, n - MIN_SEGMENT + 1)]
        np.testing.assert_allclose(two_segment_rss(values), slow, rtol=1e-9, atol=1e-9)


def _arrays_for_exact_median():
    """Long float arrays of every awkward kind: odd and even lengths, ties, heavy tails, sorted and
    periodic data (the strided sample can land on one phase), infinities, NaN, a constant."""
    rng = np.random.default_rng(11)
    n = numerics.SELECT_MIN_POINTS
    yield rng.standard_normal(n)
    yield rng.standard_normal(n + 1)
    yield rng.standard_t(1, 3 * n + 7)
    yield np.round(rng.standard_normal(2 * n), 1)                       # heavy ties at the middle
    yield np.sort(rng.standard_normal(2 * n + 1))
    yield np.sort(rng.standard_normal(2 * n))[::-1].copy()
    yield np.tile([0.0, 1.0, 2.0, 1000.0], n)                            # period = a multiple of the stride
    yield np.where(np.arange(4 * n) % (4 * n // numerics.SELECT_SAMPLE) == 0, 5.0, rng.random(4 * n))
    yield np.concatenate([rng.random(n), np.full(n // 3, np.inf), np.full(n // 3, -np.inf)])
    yield np.concatenate([rng.random(n), [np.nan]])
    yield np.full(n + 3, 0.25)
    yield 1e300 * rng.random(n) + 7e307
    yield rng.random(3 * n)[::2]                                               # a strided view, not contiguous


def _short_arrays_for_exact_median():
    """Short float arrays, which take the plain partition: lengths 1 to 9 and a window's 1,000,
    signed zeros (np.median's mean turns a middle -0.0 into 0.0), ties, infinities of both signs
    at the middle (their mean is NaN), a NaN anywhere, ints (left to np.median)."""
    rng = np.random.default_rng(12)
    for n in [*range(1, 10), 1000, 1001]:
        yield rng.standard_normal(n)
        yield np.where(rng.random(n) < 0.5, 0.0, -0.0)
        yield np.full(n, -0.0)
        yield np.round(rng.standard_normal(n))
        yield np.where(rng.random(n) < 0.5, np.inf, -np.inf)
        with_nan = rng.standard_normal(n)
        with_nan[rng.integers(n)] = np.nan
        yield with_nan
        yield rng.standard_normal(2 * n)[::2]
    yield np.arange(7)


def test_exact_median_is_np_median_bit_for_bit():
    for x in _arrays_for_exact_median():
        expected, got = np.median(x), numerics.exact_median(x)
        assert (np.isnan(expected) and np.isnan(got)) or got.tobytes() == expected.tobytes()


@pytest.mark.filterwarnings("ignore:invalid value encountered")   # the mean of inf and -inf, as np.median says
def test_exact_median_of_a_short_array_is_np_median_bit_for_bit():
    for x in _short_arrays_for_exact_median():
        expected, got = np.median(x), numerics.exact_median(x)
        assert type(got) is type(expected) and np.asarray(got).tobytes() == np.asarray(expected).tobytes(), x


def test_robust_spreads_are_unchanged_by_the_fast_median():
    """The robust spread and the winsorised series read the same as with np.median (the slow,
    obvious definition written out here)."""
    for x in _arrays_for_exact_median():
        if not np.isfinite(x).all():
            continue
        med = np.median(x)
        deviation = np.abs(x - med)
        mad = np.median(deviation)
        sigma = float(numerics.MAD_TO_SIGMA * mad) if mad > 0 else float(np.sqrt(np.pi / 2) * np.mean(deviation))
        if np.isfinite(sigma):
            assert numerics.robust_sigma(x) == sigma
            assert numerics.robust_sigma(x, float(med)) == sigma
        clipped = x.copy() if sigma == 0 else np.clip(x, med - 5 * sigma, med + 5 * sigma)
        assert numerics.winsorize(x).tobytes() == clipped.tobytes()
        in_place = x.copy()
        numerics.clip_in_place(in_place, numerics.winsor_bounds(x))
        assert in_place.tobytes() == clipped.tobytes()


def test_clipping_in_place_writes_only_when_a_value_reaches_a_bound():
    """A window with no value at or beyond median ± 5 robust sigmas is left unwritten (read-only
    here, so a write would raise); one spike is clipped where it lies, as np.clip clips it."""
    x = np.random.default_rng(3).standard_normal(100_000)
    x.flags.writeable = False
    numerics.clip_in_place(x, numerics.winsor_bounds(x))
    spiked = x.copy()
    spiked[500] = 40.0
    expected = np.clip(spiked, *numerics.winsor_bounds(spiked))
    numerics.clip_in_place(spiked, numerics.winsor_bounds(spiked))
    assert spiked.tobytes() == expected.tobytes() and spiked[500] < 40.0


def _same(got, expected):
    return type(got) is type(expected) and np.asarray(got).tobytes() == np.asarray(expected).tobytes()


@pytest.mark.filterwarnings("ignore:overflow encountered")   # sums near the float limit, on both sides
@pytest.mark.parametrize("halves", [False, True])   # one sort; every array sorted in halves on two threads
def test_a_sorted_window_gives_the_statistics_of_the_window_itself_bit_for_bit(halves, monkeypatch):
    """Each statistic read from the sorted values against the function it names, on the window
    itself (the oracle): awkward long and short finite arrays, ties, signed zeros, values near
    the float limit (where the median overflows and the functions halve), a window standardised
    as prepare_series standardises it (a non-decreasing map), tolerances of 0 and wider."""
    from siamdiag.engine import checks

    monkeypatch.setattr(numerics, "SORT_THREADS", 2 if halves else 1)
    monkeypatch.setattr(numerics, "HALVES_SORT_MIN", 2 if halves else numerics.HALVES_SORT_MIN)

    arrays = [x for x in [*_arrays_for_exact_median(), *_short_arrays_for_exact_median()]
              if x.dtype == np.float64 and np.isfinite(x).all()]
    rng = np.random.default_rng(21)
    arrays += [np.round(rng.standard_normal(n), 2) + 684.5 for n in (2, 3, 1000, 60_001)]   # quantised, offset
    for x in arrays:
        window = numerics.SortedWindow(x)
        assert _same(window.exact_median(), numerics.exact_median(x))
        assert window.median() == numerics.median(x)
        level = window.median()
        for centre in (level, float(np.mean(x)), float(x[0])):
            assert _same(window.median_deviation(centre), numerics.exact_median(np.abs(x - centre)))
        if np.isfinite(numerics.robust_sigma(x)):
            assert window.robust_sigma() == numerics.robust_sigma(x)
            assert window.robust_sigma(level) == numerics.robust_sigma(x, level)
        assert window.winsor_bounds() == numerics.winsor_bounds(x)
        assert window.distinct_count() == checks.distinct_count(x)
        for tolerance in (0.0, 2e-6 * abs(level), 0.5, 3.0):
            assert window.share_within(level, tolerance) == float(np.mean(np.abs(x - level) <= tolerance))
        spread = numerics.robust_sigma(x, level)
        scale = numerics.power_of_two_near(spread)
        standardised = (x - level) / scale
        mapped = window.mapped(lambda v: (v - level) / scale, standardised)
        assert _same(mapped.exact_median(), numerics.exact_median(standardised))
        assert mapped.winsor_bounds() == numerics.winsor_bounds(standardised)


@pytest.mark.parametrize("n", [2, 3, 1000, 60_001, 1 << 18, (1 << 18) + 1])
def test_a_copy_sorted_in_halves_is_np_sort(n, monkeypatch):
    """The oracle is np.sort of the same array: ties, signed zeros, both extremes of the floats,
    odd and even lengths; at and past the length where the halves are sorted on two threads."""
    monkeypatch.setattr(numerics, "SORT_THREADS", 2)
    if n < numerics.HALVES_SORT_MIN:
        monkeypatch.setattr(numerics, "HALVES_SORT_MIN", 2)
    rng = np.random.default_rng(n)
    x = np.round(rng.standard_normal(n), 1)
    x[rng.integers(0, n, size=max(1, n // 10))] = -0.0
    x[0], x[-1] = np.finfo(float).max, -np.finfo(float).max
    before = x.copy()
    ordered = numerics.sorted_copy(x)
    np.testing.assert_array_equal(ordered, np.sort(x))
    np.testing.assert_array_equal(x, before)   # the window itself is left as it was
    assert np.all(ordered[1:] >= ordered[:-1])


def test_the_kth_of_two_sorted_sequences_is_the_kth_of_both_sorted_together():
    rng = np.random.default_rng(8)
    for m, n in ((0, 5), (5, 0), (1, 1), (3, 7), (50, 49), (200, 3)):
        a, b = np.sort(np.round(rng.standard_normal(m), 1)), np.sort(np.round(rng.standard_normal(n), 1))
        both = np.sort(np.concatenate([a, b]))
        for k in range(m + n):
            assert numerics._kth_of_two(a.item, m, b.item, n, k) == both[k]


@pytest.mark.filterwarnings("ignore:overflow encountered")   # a sum near the float limit is inf for both
def test_mean_is_ndarray_mean_bit_for_bit():
    """The engine's mean is x.mean() without its wrapper: the same bits for any 1-D float64
    array (lengths on both sides of the pairwise sum's blocks, strided views, signed zeros,
    magnitudes near the float limit, infinities)."""
    rng = np.random.default_rng(13)
    for n in [1, 2, 7, 8, 9, 127, 128, 129, 1000, 4097]:
        for x in (rng.standard_normal(n), 1e307 * rng.random(n), np.where(rng.random(n) < 0.5, 0.0, -0.0),
                  rng.standard_normal(2 * n)[::2], np.append(rng.random(n - 1), np.inf)):
            expected, got = x.mean(), numerics.mean(x)
            assert type(got) is type(expected) and got.tobytes() == expected.tobytes()


def test_polynomial_residuals_are_np_polyfits_residuals():
    """The projection on cached orthonormal polynomials leaves what np.polyfit's fit leaves, to
    rounding, at the lengths the engine meets (a handful of batch means to a long window) and
    for curves far from zero mean; a second call (the cached basis) gives the same again."""
    rng = np.random.default_rng(14)
    for n in [3, 4, 20, 999, 1000, 20000]:
        x = np.linspace(-1.0, 1.0, n)
        for degree in (1, 2):
            y = 1e3 + 5.0 * x - 40.0 * x * x + rng.standard_normal(n)
            expected = y - np.polyval(np.polyfit(x, y, degree), x)
            got = numerics.polynomial_residuals(y, degree)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * np.abs(y).max())
            assert numerics.polynomial_residuals(y, degree).tobytes() == got.tobytes()


def _geyer_tau_slowly(x):
    """Geyer's initial positive sequence over every autocorrelation, each a plain sum."""
    n = len(x)
    y = x - x.mean()
    energy = sum(v * v for v in y)
    if not energy > 0:
        return 1.0
    rho = [sum(y[t] * y[t + k] for t in range(n - k)) / energy for k in range(min(n - 1, max(2, n // 2)) + 1)]
    total = 0.0
    for k in range(0, len(rho) - 1, 2):
        if rho[k] + rho[k + 1] <= 0:
            break
        total += rho[k] + rho[k + 1]
    return max(1.0, 2.0 * total - 1.0)


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9, 0.98])   # sums that stop within the dot products, and past them
def test_tau_int_is_geyers_sum_over_plain_autocorrelations(phi):
    rng = np.random.default_rng(15)
    for n in [1, 2, 3, 4, 5, 17, 18, 40, 600]:
        x = np.zeros(n)
        for t in range(n):
            x[t] = (phi * x[t - 1] if t else 0.0) + rng.standard_normal()
        assert numerics.integrated_autocorrelation_time(x) == pytest.approx(_geyer_tau_slowly(x), rel=1e-9)
    assert numerics.integrated_autocorrelation_time(np.full(50, 0.25)) == 1.0   # no spread at all (0.25: the mean is exact)


@pytest.mark.parametrize("holes", [0, 1, 5, 1000])
def test_kept_is_boolean_indexing_without_the_copy_when_every_value_is_kept(holes):
    """Oracle: x[keep]. With every value kept the array itself comes back (no copy of a long run);
    otherwise the values kept, in order, bit for bit."""
    rng = np.random.default_rng(holes)
    x = rng.standard_normal(5000)
    x[rng.choice(len(x), holes, replace=False)] = np.nan
    keep = np.isfinite(x)
    got = numerics.kept(x, keep)
    assert got.tobytes() == x[keep].tobytes()
    assert (got is x) == (holes == 0)
    view = x[100:]
    assert (numerics.kept(view, np.isfinite(view)) is view) == (not np.isnan(view).any())
