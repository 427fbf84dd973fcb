-- purpose: The regulator's set of complaint figures per period and region: complaints per
--   10,000 customers (or per any exposure the caller gives, such as premium), complaints
--   the regulator transferred (监管转办) and their on-time rate, the withdrawal-before-
--   transfer rate and the mediation success rate.
-- formula: complaints = tickets of kind 'complaint' by local day of created_at; exposure =
--   customers open at the period's start + opened in it, or {exposure} when it is above
--   0 (e.g. premium in 100M RMB, with per=1); rate = complaints x {per} / exposure.
--   regulator = source 'regulator_transferred'; of those not withdrawn (撤诉) or
--   rejected (不予受理) and with a due_at: on time = resolved by due_at, late = resolved
--   after it or unresolved with due_at before the newest event the tickets table holds,
--   pending = unresolved and not yet due (the row is then provisional); on-time rate =
--   on time / (on time + late). withdrawal-before-transfer rate = complaints withdrawn
--   (status withdrawn) that the regulator had not transferred / complaints. mediation
--   success rate = complaints whose mediation_result is 'succeeded' / complaints with a
--   mediation_result. Periods start at the one holding {from} and are cut at {to}.
-- grain: one row per period (month, quarter, half year or year) x region with complaints or customers
-- lookahead: all
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text month month, quarter, half (1 Jan-30 Jun, 1 Jul-31 Dec) or year
-- param: region text % region code (LIKE pattern; % for all)
-- param: per float 10000 the rate's scale (complaints per this many units of exposure)
-- param: exposure float 0 the rate's denominator for every row; 0 = the region's customers
WITH periods AS (
    SELECT period_start, least(period_shift({{period}}, period_start, 1), {{to}}) AS period_end
    FROM (
        SELECT period_shift({{period}}, period_start({{period}}, {{from}}), n) AS period_start
        FROM (SELECT unnest(generate_series(0, date_diff('month', {{from}}, {{to}}))) AS n)
    )
    WHERE period_start < {{to}}
),
customers_exposed AS (
    SELECT p.period_start, c.region,
           count(*) FILTER (WHERE local_date(c.opened_at) < p.period_end
               AND (c.closed_at IS NULL OR local_date(c.closed_at) >= p.period_start)) AS customers
    FROM periods p CROSS JOIN customers c
    WHERE c.region LIKE {{region}}
    GROUP BY p.period_start, c.region
),
observed AS (
    SELECT greatest(max(created_at), max(resolved_at), max(closed_at)) AS as_of FROM tickets
),
complaints AS (
    SELECT
        p.period_start,
        t.region,
        count(*) AS complaints,
        count(*) FILTER (WHERE t.source = 'regulator_transferred') AS regulator,
        count(*) FILTER (WHERE t.source = 'regulator_transferred'
            AND t.status NOT IN ('withdrawn', 'rejected')
            AND t.resolved_at <= t.due_at) AS regulator_on_time,
        count(*) FILTER (WHERE t.source = 'regulator_transferred'
            AND t.status NOT IN ('withdrawn', 'rejected')
            AND (t.resolved_at > t.due_at OR (t.resolved_at IS NULL AND t.due_at < o.as_of)))
            AS regulator_late,
        count(*) FILTER (WHERE t.source = 'regulator_transferred'
            AND t.status NOT IN ('withdrawn', 'rejected')
            AND t.resolved_at IS NULL AND t.due_at >= o.as_of) AS regulator_pending,
        count(*) FILTER (WHERE t.status = 'withdrawn'
            AND t.source <> 'regulator_transferred') AS withdrawn_before_transfer,
        count(t.mediation_result) AS mediations,
        count(*) FILTER (WHERE t.mediation_result = 'succeeded') AS mediated
    FROM tickets t
    CROSS JOIN observed o
    JOIN periods p
      ON local_date(t.created_at) >= p.period_start AND local_date(t.created_at) < p.period_end
    WHERE t.kind = 'complaint'
      AND t.created_at >= local_midnight(period_start({{period}}, {{from}}))
      AND t.created_at < {{to:utc}}
      AND t.region LIKE {{region}}
    GROUP BY p.period_start, t.region
),
keyed AS (
    SELECT k.period_start, k.region,
           CASE WHEN {{exposure}} > 0 THEN CAST({{exposure}} AS DOUBLE)
                ELSE CAST(coalesce(e.customers, 0) AS DOUBLE) END AS exposure
    FROM (
        SELECT period_start, region FROM customers_exposed WHERE customers > 0
        UNION
        SELECT period_start, region FROM complaints
    ) k
    LEFT JOIN customers_exposed e ON e.period_start = k.period_start AND e.region = k.region
),
result AS (
    SELECT
        k.period_start AS period,
        k.region,
        coalesce(c.complaints, 0) AS complaints,
        k.exposure,
        coalesce(c.complaints, 0) * {{per}} / nullif(k.exposure, 0) AS rate,
        coalesce(c.regulator, 0) AS regulator,
        coalesce(c.regulator_on_time, 0) AS regulator_on_time,
        coalesce(c.regulator_late, 0) AS regulator_late,
        CAST(c.regulator_on_time AS DOUBLE) / nullif(c.regulator_on_time + c.regulator_late, 0)
            AS regulator_on_time_rate,
        coalesce(c.withdrawn_before_transfer, 0) AS withdrawn_before_transfer,
        CAST(c.withdrawn_before_transfer AS DOUBLE) / c.complaints AS withdrawal_rate,
        coalesce(c.mediations, 0) AS mediations,
        CAST(c.mediated AS DOUBLE) / nullif(c.mediations, 0) AS mediation_success_rate,
        coalesce(c.regulator_pending, 0) > 0 AS provisional
    FROM keyed k
    LEFT JOIN complaints c ON c.period_start = k.period_start AND c.region = k.region
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
ORDER BY result.period, result.region
