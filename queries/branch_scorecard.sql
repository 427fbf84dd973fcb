-- purpose: A weighted monthly scorecard of branches, with the top 5 and bottom 5 of
--   each month.
-- formula: per branch and local month: complaints per 1,000 customers of the branch
--   (customers open at the month's end; lower is better), callback satisfaction
--   (tickets whose last score was very_satisfied or satisfied / scored tickets, by the
--   month of that last score, as callbacks_kpis counts customers), ticket on-time rate
--   (resolved by due_at / tickets with a due_at that were resolved or are past it
--   unresolved, as tickets_sla: past it as of the newest ticket time the warehouse
--   holds, hence the lookahead `all`), and the branch hall's average wait in minutes
--   (lower is better). Each measure becomes a rank among the month's branches that have it,
--   from 0 (worst) to 1 (best), ties sharing their mean rank and a branch alone with a
--   measure ranked 0.5; a branch without a measure is not ranked on it and does not
--   move the others' ranks. score = 100 x weighted mean of the ranks with weights
--   {w_complaints}, {w_satisfaction}, {w_on_time}, {w_wait} (a missing measure is left
--   out and the weights of the rest renormalised).
-- grain: one row per month x branch in the month's top {top} or bottom {top}
-- lookahead: all
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-04-01 end local day, exclusive
-- param: region text % region code (LIKE pattern; % for all)
-- param: w_complaints float 0.3 weight of the complaint rate
-- param: w_satisfaction float 0.3 weight of callback satisfaction
-- param: w_on_time float 0.2 weight of the on-time rate
-- param: w_wait float 0.2 weight of the branch-hall wait
-- param: top int 5 branches listed at each end
WITH months AS (
    SELECT CAST(value AS DATE) AS month_start, CAST(value + INTERVAL '1 month' AS DATE) AS month_end
    FROM (SELECT unnest(generate_series(date_trunc('month', CAST({{from}} AS TIMESTAMP)),
                         CAST({{to}} AS TIMESTAMP) - INTERVAL '1 day', INTERVAL '1 month')) AS value)
),
base AS (
    SELECT m.month_start, c.branch_id, c.region, count(*) AS customers
    FROM months m JOIN customers c
      ON local_date(c.opened_at) < m.month_end
     AND (c.closed_at IS NULL OR local_date(c.closed_at) >= m.month_end)
    WHERE c.region LIKE {{region}}
    GROUP BY m.month_start, c.branch_id, c.region
),
observed AS (
    SELECT greatest(max(created_at), max(resolved_at), max(closed_at)) AS as_of FROM tickets
),
t AS (
    SELECT local_trunc('month', created_at) AS month_start,
           branch_id,
           count(*) FILTER (WHERE kind = 'complaint') AS complaints,
           count(*) FILTER (WHERE resolved_at <= due_at) AS on_time,
           count(*) FILTER (WHERE due_at IS NOT NULL AND (resolved_at IS NOT NULL OR due_at < o.as_of)) AS with_due
    FROM tickets CROSS JOIN observed o
    WHERE created_at >= {{from:utc}} AND created_at < {{to:utc}} AND region LIKE {{region}}
      AND (kind = 'complaint' OR due_at IS NOT NULL)
    GROUP BY 1, branch_id
),
last_scores AS (
    -- Each ticket's last score (callbacks_kpis' rule), in the month it was given.
    SELECT ticket_id, max(performed_at) AS scored_at,
           max_by(score, performed_at) AS score
    FROM callbacks
    WHERE score IS NOT NULL AND ticket_id IS NOT NULL
      AND performed_at < {{to:utc}} AND region LIKE {{region}}
    GROUP BY ticket_id
),
s AS (
    SELECT local_trunc('month', ls.scored_at) AS month_start,
           tk.branch_id,
           count(*) FILTER (WHERE ls.score IN ('very_satisfied', 'satisfied')) AS satisfied,
           count(*) AS scored
    FROM last_scores ls JOIN tickets tk ON tk.ticket_id = ls.ticket_id
    WHERE ls.scored_at >= {{from:utc}}
    GROUP BY 1, tk.branch_id
),
w AS (
    SELECT local_trunc('month', arrived_at) AS month_start,
           branch_id,
           -- Summed as integer microseconds: the mean does not depend on the order the
           -- rows are read in (a float sum would, in its last digits).
           CAST(sum(date_diff('microsecond', arrived_at, called_at)) AS DOUBLE)
               / nullif(count(called_at), 0) / 60000000.0 AS avg_wait_min
    FROM visits
    WHERE arrived_at >= {{from:utc}} AND arrived_at < {{to:utc}} AND region LIKE {{region}}
    GROUP BY 1, branch_id
),
measures AS (
    SELECT b.month_start, b.region, b.branch_id, b.customers,
           1000.0 * coalesce(t.complaints, 0) / b.customers AS complaints_per_1k,
           CAST(s.satisfied AS DOUBLE) / nullif(s.scored, 0) AS satisfaction,
           CAST(t.on_time AS DOUBLE) / nullif(t.with_due, 0) AS on_time_rate,
           w.avg_wait_min
    FROM base b
    LEFT JOIN t ON t.month_start = b.month_start AND t.branch_id = b.branch_id
    LEFT JOIN s ON s.month_start = b.month_start AND s.branch_id = b.branch_id
    LEFT JOIN w ON w.month_start = b.month_start AND w.branch_id = b.branch_id
),
positions AS (
    -- Per measure, among the month's branches that have it (the missing ones form a
    -- partition of their own): n, the first position of a value (rank) and its last
    -- (cume_dist x n); worst first.
    SELECT *,
        count(*) OVER (PARTITION BY month_start) AS n_complaints,
        rank() OVER (PARTITION BY month_start ORDER BY complaints_per_1k DESC) AS first_complaints,
        cume_dist() OVER (PARTITION BY month_start ORDER BY complaints_per_1k DESC) AS cume_complaints,
        count(*) OVER (PARTITION BY month_start, satisfaction IS NULL) AS n_satisfaction,
        rank() OVER (PARTITION BY month_start, satisfaction IS NULL ORDER BY satisfaction ASC) AS first_satisfaction,
        cume_dist() OVER (PARTITION BY month_start, satisfaction IS NULL ORDER BY satisfaction ASC) AS cume_satisfaction,
        count(*) OVER (PARTITION BY month_start, on_time_rate IS NULL) AS n_on_time,
        rank() OVER (PARTITION BY month_start, on_time_rate IS NULL ORDER BY on_time_rate ASC) AS first_on_time,
        cume_dist() OVER (PARTITION BY month_start, on_time_rate IS NULL ORDER BY on_time_rate ASC) AS cume_on_time,
        count(*) OVER (PARTITION BY month_start, avg_wait_min IS NULL) AS n_wait,
        rank() OVER (PARTITION BY month_start, avg_wait_min IS NULL ORDER BY avg_wait_min DESC) AS first_wait,
        cume_dist() OVER (PARTITION BY month_start, avg_wait_min IS NULL ORDER BY avg_wait_min DESC) AS cume_wait
    FROM measures
),
ranked AS (
    -- Mid-rank scaled to 0 (worst) … 1 (best): ((first - 1) + (last - 1)) / 2 / (n - 1).
    SELECT *,
        CASE WHEN n_complaints = 1 THEN 0.5 ELSE
            ((first_complaints - 1) + (round(cume_complaints * n_complaints) - 1)) / 2.0 / (n_complaints - 1) END AS r_complaints,
        CASE WHEN satisfaction IS NULL THEN NULL WHEN n_satisfaction = 1 THEN 0.5 ELSE
            ((first_satisfaction - 1) + (round(cume_satisfaction * n_satisfaction) - 1)) / 2.0 / (n_satisfaction - 1) END AS r_satisfaction,
        CASE WHEN on_time_rate IS NULL THEN NULL WHEN n_on_time = 1 THEN 0.5 ELSE
            ((first_on_time - 1) + (round(cume_on_time * n_on_time) - 1)) / 2.0 / (n_on_time - 1) END AS r_on_time,
        CASE WHEN avg_wait_min IS NULL THEN NULL WHEN n_wait = 1 THEN 0.5 ELSE
            ((first_wait - 1) + (round(cume_wait * n_wait) - 1)) / 2.0 / (n_wait - 1) END AS r_wait
    FROM positions
),
scored AS (
    SELECT *,
        100.0 * (
            {{w_complaints}} * r_complaints
            + {{w_satisfaction}} * coalesce(r_satisfaction, 0)
            + {{w_on_time}} * coalesce(r_on_time, 0)
            + {{w_wait}} * coalesce(r_wait, 0)
        ) / nullif(
            {{w_complaints}}
            + CASE WHEN r_satisfaction IS NULL THEN 0 ELSE {{w_satisfaction}} END
            + CASE WHEN r_on_time IS NULL THEN 0 ELSE {{w_on_time}} END
            + CASE WHEN r_wait IS NULL THEN 0 ELSE {{w_wait}} END, 0) AS score
    FROM ranked
),
placed AS (
    SELECT *,
        row_number() OVER (PARTITION BY month_start ORDER BY score DESC, branch_id) AS rank_from_top,
        row_number() OVER (PARTITION BY month_start ORDER BY score ASC, branch_id) AS rank_from_bottom
    FROM scored
),
result AS (
    SELECT month_start AS month, region, branch_id, score,
           CASE WHEN rank_from_top <= {{top}} THEN 'top' ELSE 'bottom' END AS place,
           rank_from_top AS rank,
           customers, complaints_per_1k, satisfaction, on_time_rate, avg_wait_min
    FROM placed
    WHERE rank_from_top <= {{top}} OR rank_from_bottom <= {{top}}
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name,
       coalesce(nullif(n_branch.name_zh, ''), result.branch_id) AS branch_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
LEFT JOIN org_units n_branch ON n_branch.unit_id = result.branch_id
ORDER BY result.month, result.rank
