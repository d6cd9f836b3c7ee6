//! The statistics the perf bench reports its ratios with
//! (`benches/floor`): the confidence interval of a median is as wide as
//! its docs and the README say, and covers at least 95%.

#[path = "../benches/floor/mod.rs"]
mod floor;

use floor::{PairedRatio, median_ci_rank};

/// P(Bin(n, 1/2) <= k).
fn binomial_cdf(n: usize, k: usize) -> f64 {
    let mut p = 0.5f64.powi(n as i32);
    let mut sum = 0.0;
    for i in 0..=k {
        sum += p;
        p *= (n - i) as f64 / (i + 1) as f64;
    }
    sum
}

#[test]
fn the_interval_of_a_median_is_the_widest_within_95_percent() {
    // 27 rounds: the 8th to the 20th ratio (0-based 7 and 19), as the README says.
    assert_eq!(median_ci_rank(27), 7);
    // 81 rounds: the 32nd to the 50th.
    assert_eq!(median_ci_rank(81), 31);
    // Too few rounds for 95%: the whole range.
    assert_eq!(median_ci_rank(5), 0);
    for n in 6..200 {
        let k = median_ci_rank(n);
        // The 0-based ranks k and n - 1 - k miss the median when k + 1 or
        // more values fall on one side of it.
        let coverage = |k: usize| 1.0 - 2.0 * binomial_cdf(n, k);
        assert!(
            coverage(k) >= 0.95,
            "n = {n}: rank {k} covers {}",
            coverage(k)
        );
        assert!(
            coverage(k + 1) < 0.95,
            "n = {n}: rank {k} is not the narrowest"
        );
    }
}

#[test]
fn a_paired_ratio_is_of_the_same_rounds() {
    let floor: Vec<f64> = (1..=27).map(|i| 100.0 * i as f64).collect();
    // Ours at 0.90 .. 1.16 of the floor, round by round, shuffled in order.
    let ours: Vec<f64> = floor
        .iter()
        .enumerate()
        .map(|(i, f)| f * (0.90 + 0.01 * ((i * 7) % 27) as f64))
        .collect();
    let ratio = PairedRatio::of(&ours, &floor).unwrap();
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(close(ratio.median, 1.03), "{ratio}");
    assert!(close(ratio.ci_low, 0.97), "{ratio}");
    assert!(close(ratio.ci_high, 1.09), "{ratio}");
    assert!(close(ratio.low, 0.90) && close(ratio.high, 1.16), "{ratio}");
    assert!(PairedRatio::of(&[], &[]).is_none());
}
