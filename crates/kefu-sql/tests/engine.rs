//! The engine over a generated warehouse: read-only refusals, pruning shown by the
//! plan's metrics, the memory limit.

use std::path::Path;
use std::sync::Arc;

use datafusion::physical_plan::metrics::MetricValue;
use datafusion::physical_plan::{ExecutionPlan, collect};
use kefu_sql::{Engine, EngineOptions, SqlError};

use crate::slt::{fixture_warehouse, runtime};

/// A warehouse of `kefu gen` output: 10,000 customers over 45 days (two months and a
/// half; about 30,000 calls a month, so a month's file has more than one data page).
fn generated_warehouse(dir: &Path) -> kefu_storage::Warehouse {
    crate::slt::generated_warehouse(dir, 10_000, 45).1
}

/// Sums the named metric over every operator of the plan (for pruning metrics: what
/// was pruned).
fn metric(plan: &Arc<dyn ExecutionPlan>, name: &str) -> usize {
    let own: usize = plan.metrics().map_or(0, |set| {
        set.iter()
            .map(|m| m.value())
            .filter(|v| v.name() == name)
            .map(|v| match v {
                MetricValue::PruningMetrics {
                    pruning_metrics, ..
                } => pruning_metrics.pruned(),
                other => other.as_usize(),
            })
            .sum()
    });
    own + plan
        .children()
        .into_iter()
        .map(|c| metric(c, name))
        .sum::<usize>()
}

/// Runs `sql`, returning the row count and the executed plan (with its metrics).
async fn run(engine: &Engine, sql: &str) -> Result<(usize, Arc<dyn ExecutionPlan>), SqlError> {
    let df = engine.sql(sql).await?;
    let ctx = engine.context().task_ctx();
    let plan = df.create_physical_plan().await?;
    let batches = collect(plan.clone(), ctx).await?;
    Ok((batches.iter().map(|b| b.num_rows()).sum(), plan))
}

#[test]
fn writes_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = fixture_warehouse(dir.path());
    let before = std::fs::read_dir(dir.path().join("calls")).unwrap().count();
    runtime().block_on(async {
        let engine = Engine::open(&warehouse, &EngineOptions::default())
            .await
            .unwrap();
        for sql in [
            "INSERT INTO calls SELECT * FROM calls",
            "CREATE TABLE copy AS SELECT * FROM calls",
            "CREATE VIEW v AS SELECT 1",
            "DROP TABLE calls",
            "COPY calls TO 'out.parquet'",
            "SET datafusion.execution.batch_size = 10",
        ] {
            let e = match engine.sql(sql).await {
                Ok(df) => df.collect().await.map(|_| ()).map_err(SqlError::from),
                Err(e) => Err(e),
            }
            .expect_err(sql);
            assert!(matches!(e, SqlError::ReadOnly { .. }), "{sql}: {e}");
            assert!(e.to_string().contains("read-only"), "{e}");
        }
        // Reading still works, and nothing changed.
        let (rows, _) = run(&engine, "SELECT * FROM calls").await.unwrap();
        assert_eq!(rows, 12);
    });
    assert_eq!(
        std::fs::read_dir(dir.path().join("calls")).unwrap().count(),
        before
    );
}

#[test]
fn date_and_region_filters_prune_files_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = generated_warehouse(dir.path());
    runtime().block_on(async {
        // One partition: each file is scanned as one range, so ranges count files.
        let options = EngineOptions {
            target_partitions: Some(1),
            ..EngineOptions::default()
        };
        let engine = Engine::open(&warehouse, &options).await.unwrap();
        let (all, _) = run(&engine, "SELECT call_id FROM calls").await.unwrap();
        // One local month by event time only: the other months' files are skipped by
        // their min/max statistics without reading a row.
        let (january, plan) = run(
            &engine,
            "SELECT call_id FROM calls
             WHERE ivr_entered_at >= TIMESTAMP '2025-12-31T16:00:00Z'
               AND ivr_entered_at < TIMESTAMP '2026-01-31T16:00:00Z'",
        )
        .await
        .unwrap();
        assert!(january > 0 && january < all, "{january} of {all}");
        assert_eq!(
            metric(&plan, "files_ranges_pruned_statistics"),
            1,
            "February's file is skipped by time:\n{}",
            show(&plan)
        );

        // The month partition prunes at listing: fewer files are opened at all.
        let (_, by_month) = run(&engine, "SELECT call_id FROM calls WHERE month = '2026-02'")
            .await
            .unwrap();
        let (_, unfiltered) = run(&engine, "SELECT call_id FROM calls").await.unwrap();
        assert!(
            scanned_files(&by_month) < scanned_files(&unfiltered),
            "{} vs {}",
            scanned_files(&by_month),
            scanned_files(&unfiltered)
        );

        // Rows are sorted by region in each file, so the page index skips other
        // regions' pages.
        let (beijing, plan) = run(
            &engine,
            "SELECT call_id FROM calls WHERE region = 'beijing'",
        )
        .await
        .unwrap();
        assert!(beijing > 0 && beijing < all);
        let skipped = metric(&plan, "page_index_rows_pruned");
        assert!(skipped > 0, "no page pruned by region:\n{}", show(&plan));
    });
}

/// The physical plan of `sql`, run, with its metrics.
async fn plan_of(engine: &Engine, sql: &str) -> String {
    show(&run(engine, sql).await.unwrap().1)
}

/// Every row of `batches` as text, in order.
fn text_rows_of(batches: &[arrow::record_batch::RecordBatch]) -> Vec<Vec<String>> {
    batches
        .iter()
        .flat_map(|b| kefu_sql::output::text_rows(b, usize::MAX).unwrap())
        .collect()
}

fn show(plan: &Arc<dyn ExecutionPlan>) -> String {
    datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(plan.as_ref())
        .indent(true)
        .to_string()
}

/// Files the plan's scans were given (after partition pruning).
fn scanned_files(plan: &Arc<dyn ExecutionPlan>) -> usize {
    show(plan).matches(".parquet").count()
}

#[test]
fn a_query_over_the_memory_limit_spills_or_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = generated_warehouse(dir.path());
    runtime().block_on(async {
        const SORT: &str = "SELECT * FROM calls ORDER BY agent_id, category, call_id";
        // The calls as the sort buffers them, measured without a limit.
        let unbounded = Engine::open(&warehouse, &EngineOptions::default())
            .await
            .unwrap();
        let batches = unbounded.sql(SORT).await.unwrap().collect().await.unwrap();
        let all: usize = batches.iter().map(|b| b.num_rows()).sum();
        let in_memory: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
        assert!(
            all > 30_000 && in_memory > 4 << 20,
            "{all} rows, {in_memory} bytes"
        );
        // A pool of three quarters of that: the sort, which must hold every row until
        // its input ends, cannot keep them all. (One partition: a sort needs room for
        // at least one input batch, and two would split the pool.)
        let options = EngineOptions {
            memory_limit: Some(in_memory / 4 * 3),
            target_partitions: Some(1),
            spill_dir: Some(dir.path().join("spill")),
            ..EngineOptions::default()
        };
        std::fs::create_dir_all(dir.path().join("spill")).unwrap();
        let engine = Engine::open(&warehouse, &options).await.unwrap();
        let (rows, plan) = run(&engine, SORT).await.unwrap();
        assert_eq!(rows, all);
        assert!(
            metric(&plan, "spill_count") > 0,
            "no spill:\n{}",
            show(&plan)
        );

        // A query that cannot spill enough fails with the resource error, not a crash.
        let tiny = EngineOptions {
            memory_limit: Some(64 * 1024),
            target_partitions: Some(2),
            ..EngineOptions::default()
        };
        let engine = Engine::open(&warehouse, &tiny).await.unwrap();
        match run(
            &engine,
            "SELECT a.call_id FROM calls a JOIN calls b ON a.customer_id = b.customer_id",
        )
        .await
        {
            Err(e @ SqlError::ResourcesExhausted(_)) => {
                assert!(e.to_string().contains("--memory-limit"), "{e}")
            }
            Ok((rows, _)) => panic!("a self-join in 64 KiB returned {rows} rows"),
            Err(e) => panic!("expected a resource error, got: {e}"),
        }
    });
}

/// `ts ± INTERVAL` of days and hours runs as a duration on the warehouse's UTC times (kefu's
/// optimizer rule); months, and zones with daylight saving, keep the calendar's arithmetic.
/// `extract()` of UTC times reads the zoneless value. The values themselves are checked in
/// functions.slt.
#[test]
fn day_and_hour_intervals_on_utc_times_run_as_durations() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = fixture_warehouse(dir.path());
    runtime().block_on(async {
        let engine = Engine::open(&warehouse, &EngineOptions::default())
            .await
            .unwrap();
        let days = plan_of(
            &engine,
            "SELECT count(*) FROM calls \
             WHERE ended_at <= ivr_entered_at + INTERVAL '1 day 2 hours' \
               AND INTERVAL '8 hours' + ivr_entered_at > queued_at - INTERVAL '30 minutes'",
        )
        .await;
        assert!(!days.contains("IntervalMonthDayNano"), "{days}");
        assert!(days.contains("93600000000"), "1 day 2 hours in µs: {days}");
        let months = plan_of(
            &engine,
            "SELECT count(*) FROM calls WHERE ended_at <= ivr_entered_at + INTERVAL '1 month'",
        )
        .await;
        assert!(months.contains("IntervalMonthDayNano"), "{months}");
        let london = plan_of(
            &engine,
            "SELECT count(*) FROM calls WHERE ended_at <= \
             arrow_cast(ivr_entered_at, 'Timestamp(Microsecond, Some(\"Europe/London\"))') \
             + INTERVAL '1 day'",
        )
        .await;
        assert!(london.contains("IntervalMonthDayNano"), "{london}");

        // Fields of UTC times are read without the zone; of other zones, with it.
        let utc = plan_of(
            &engine,
            "SELECT extract(hour FROM ivr_entered_at) FROM calls",
        )
        .await;
        assert!(
            utc.contains("CAST(ivr_entered_at@9 AS Timestamp(µs))"),
            "{utc}"
        );
        let shanghai = plan_of(
            &engine,
            "SELECT extract(hour FROM arrow_cast(ivr_entered_at, \
             'Timestamp(Microsecond, Some(\"Asia/Shanghai\"))')) FROM calls",
        )
        .await;
        assert!(!shanghai.contains("AS Timestamp(µs))"), "{shanghai}");
    });
}

/// Inner joins on a key and a band of time run as kefu's BandJoinExec, partitioned or with
/// the build side collected; other joins stay DataFusion's hash join. The answers are
/// checked in band_joins.slt.
#[test]
fn joins_on_a_key_and_a_band_of_time_run_as_band_joins() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = fixture_warehouse(dir.path());
    runtime().block_on(async {
        let engine = Engine::open(&warehouse, &EngineOptions::default())
            .await
            .unwrap();
        let within_the_hour = "SELECT count(*) FROM calls a JOIN calls b \
             ON b.customer_id = a.customer_id \
             WHERE b.ivr_entered_at > a.ivr_entered_at \
               AND b.ivr_entered_at <= a.ivr_entered_at + INTERVAL '1 hour'";
        let (_, plan) = run(&engine, within_the_hour).await.unwrap();
        let collected = show(&plan);
        assert!(
            collected.contains("BandJoinExec: mode=CollectLeft"),
            "{collected}"
        );
        assert!(!collected.contains("HashJoinExec"), "{collected}");
        assert!(!collected.contains("DynamicFilter"), "{collected}");
        // Only the pairs inside the band are tested: C01 → C02, C02 → C03, and none of
        // the other 26 pairs of CU01's and CU02's calls.
        assert_eq!(metric(&plan, "candidate_pairs"), 2, "{collected}");

        // Without a small side, both sides are hash-partitioned.
        {
            let state = engine.context().state_ref();
            let mut state = state.write();
            let optimizer = &mut state.config_mut().options_mut().optimizer;
            optimizer.hash_join_single_partition_threshold = 0;
            optimizer.hash_join_single_partition_threshold_rows = 0;
        }
        let partitioned = plan_of(&engine, within_the_hour).await;
        assert!(
            partitioned.contains("BandJoinExec: mode=Partitioned"),
            "{partitioned}"
        );

        for not_a_band in [
            // One end only.
            "SELECT count(*) FROM calls a JOIN calls b ON b.customer_id = a.customer_id \
             WHERE b.ivr_entered_at > a.ivr_entered_at",
            // Outer joins keep rows without a partner.
            "SELECT count(*) FROM calls a LEFT JOIN calls b ON b.customer_id = a.customer_id \
             AND b.ivr_entered_at > a.ivr_entered_at \
             AND b.ivr_entered_at <= a.ivr_entered_at + INTERVAL '1 hour'",
            // Months are not a fixed length.
            "SELECT count(*) FROM calls a JOIN calls b ON b.customer_id = a.customer_id \
             WHERE b.ivr_entered_at > a.ivr_entered_at \
               AND b.ivr_entered_at <= a.ivr_entered_at + INTERVAL '1 month'",
        ] {
            let plan = plan_of(&engine, not_a_band).await;
            assert!(plan.contains("HashJoinExec"), "{plan}");
            assert!(!plan.contains("BandJoinExec"), "{plan}");
        }
    });
}

/// Windows of only lead() / lag() with constant offsets run as kefu's ShiftWindowExec;
/// IGNORE NULLS, other functions and computed offsets stay DataFusion's. The answers are
/// checked in shift_windows.slt.
#[test]
fn lead_and_lag_over_sorted_input_run_as_shifts() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = fixture_warehouse(dir.path());
    runtime().block_on(async {
        let engine = Engine::open(&warehouse, &EngineOptions::default())
            .await
            .unwrap();
        let shifted = plan_of(
            &engine,
            "SELECT call_id, lead(ivr_entered_at) OVER w, lag(call_id, 2, 'none') OVER w \
             FROM calls WINDOW w AS (PARTITION BY customer_id ORDER BY ivr_entered_at)",
        )
        .await;
        assert!(shifted.contains("ShiftWindowExec"), "{shifted}");
        assert!(!shifted.contains("BoundedWindowAggExec"), "{shifted}");
        for not_shifts in [
            "SELECT call_id, lead(ivr_entered_at) IGNORE NULLS OVER \
             (PARTITION BY customer_id ORDER BY ivr_entered_at) FROM calls",
            "SELECT call_id, lead(ivr_entered_at) OVER w, row_number() OVER w FROM calls \
             WINDOW w AS (PARTITION BY customer_id ORDER BY ivr_entered_at)",
        ] {
            let plan = plan_of(&engine, not_shifts).await;
            assert!(plan.contains("BoundedWindowAggExec"), "{plan}");
            assert!(!plan.contains("ShiftWindowExec"), "{plan}");
        }
    });
}

/// percentile_cont per group when partial aggregation is skipped (kefu skips it once it
/// keeps a tenth of the rows: a median per customer): DataFusion's own accumulator
/// panicked there ("one argument to merge_batch"); kefu's gives the answers of
/// percentiles.slt, for DOUBLE and REAL values.
#[test]
fn percentiles_per_customer_survive_skipped_partial_aggregation() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = fixture_warehouse(dir.path());
    runtime().block_on(async {
        let engine = Engine::open(&warehouse, &EngineOptions::default())
            .await
            .unwrap();
        {
            let state = engine.context().state_ref();
            let mut state = state.write();
            let execution = &mut state.config_mut().options_mut().execution;
            execution.skip_partial_aggregation_probe_rows_threshold = 1;
            execution.skip_partial_aggregation_probe_ratio_threshold = 0.0;
            // Partial aggregation is skipped from a partition's second batch on.
            execution.batch_size =
                datafusion::common::config::ConfigNonZeroUsize::try_new(2).unwrap();
        }
        let sql = "SELECT customer_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_s), \
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY wait_s) \
                   FROM calls GROUP BY customer_id ORDER BY customer_id NULLS LAST";
        let batches = engine.sql(sql).await.unwrap().collect().await.unwrap();
        let rows = text_rows_of(&batches);
        assert_eq!(
            rows,
            [
                ["CU01", "10.0", "30.0"],
                ["CU02", "20.0", "20.0"],
                ["NULL", "21.0", "52.2"]
            ]
        );
        // Of REAL values (DataFusion's accumulator, which kefu keeps to partial
        // aggregation): the same answers, as REAL.
        let sql = "SELECT customer_id, percentile_cont(0.9) WITHIN GROUP \
                   (ORDER BY CAST(wait_s AS REAL)) \
                   FROM calls GROUP BY customer_id ORDER BY customer_id NULLS LAST";
        let batches = engine.sql(sql).await.unwrap().collect().await.unwrap();
        let rows = text_rows_of(&batches);
        assert_eq!(rows, [["CU01", "30.0"], ["CU02", "20.0"], ["NULL", "52.2"]]);
        // Partial aggregation was indeed skipped.
        let plan = plan_of(&engine, sql).await;
        assert!(!plan.contains("skipped_aggregation_rows=0,"), "{plan}");
        assert!(plan.contains("skipped_aggregation_rows="), "{plan}");
    });
}

/// A sorted result of many batches comes out in one piece: every result's text leaves as
/// `Utf8` through a projection over the final sort, and DataFusion 55 spread the merged
/// rows round-robin again under it, so the batches of an `ORDER BY` came out of order.
#[test]
fn sorted_results_of_many_batches_stay_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = generated_warehouse(dir.path());
    runtime().block_on(async {
        let engine = Engine::open(&warehouse, &EngineOptions::default())
            .await
            .unwrap();
        // Batches of 512 rows: every result below is many.
        engine
            .context()
            .state_ref()
            .write()
            .config_mut()
            .options_mut()
            .execution
            .batch_size = datafusion::common::config::ConfigNonZeroUsize::try_new(512).unwrap();
        for sql in [
            "SELECT call_id, queue FROM calls ORDER BY call_id",
            "SELECT customer_id, count(*) FROM calls GROUP BY customer_id \
             ORDER BY customer_id NULLS LAST",
            "SELECT ivr_entered_at, call_id FROM calls ORDER BY ivr_entered_at DESC, call_id",
        ] {
            let (_, plan) = run(&engine, sql).await.unwrap();
            let shown = show(&plan);
            let merge = shown.find("SortPreservingMergeExec").expect(&shown);
            assert!(!shown[..merge].contains("RepartitionExec"), "{shown}");
            for _ in 0..5 {
                let batches = engine.sql(sql).await.unwrap().collect().await.unwrap();
                let rows = text_rows_of(&batches);
                assert!(batches.len() > 1, "{sql}: one batch");
                let out_of_order = rows.windows(2).position(|pair| {
                    let (a, b) = (&pair[0], &pair[1]);
                    if sql.contains("DESC") {
                        (&b[0], &a[1]) > (&a[0], &b[1])
                    } else if a[0] == "NULL" {
                        b[0] != "NULL"
                    } else {
                        b[0] != "NULL" && b[0] < a[0]
                    }
                });
                assert_eq!(out_of_order, None, "{sql}");
            }
        }
    });
}
