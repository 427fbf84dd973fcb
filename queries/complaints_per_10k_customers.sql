-- purpose: Complaints per 10,000 customers per period and region (the regulators' rate).
-- formula: rate = complaints / exposure x {per}; exposure = customers open at the
--   period's start (opened before it, not closed before it) + customers opened during
--   the period; complaints = tickets of kind 'complaint' by local day of created_at.
--   A period is cut at {to}: a year asked up to 1 February counts January only.
-- grain: one row per period (month, quarter, half year or year) x region with customers
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text month month, quarter, half (1 Jan-30 Jun, 1 Jul-31 Dec) or year
-- param: region text % region code (LIKE pattern; % for all)
-- param: per float 10000 the rate's scale (complaints per this many customers)
WITH periods AS (
    -- The periods from the one holding {from}, each cut at {to}.
    SELECT period_start, least(period_shift({{period}}, period_start, 1), {{to}}) AS period_end
    FROM (
        SELECT period_shift({{period}}, period_start({{period}}, {{from}}), n) AS period_start
        FROM (SELECT unnest(generate_series(0, date_diff('month', {{from}}, {{to}}))) AS n)
    )
    WHERE period_start < {{to}}
),
exposure AS (
    SELECT
        p.period_start,
        c.region,
        count(*) FILTER (WHERE local_date(c.opened_at) < p.period_start
            AND (c.closed_at IS NULL OR local_date(c.closed_at) >= p.period_start)) AS open_at_start,
        count(*) FILTER (WHERE local_date(c.opened_at) >= p.period_start
            AND local_date(c.opened_at) < p.period_end) AS opened
    FROM periods p
    CROSS JOIN customers c
    WHERE c.region LIKE {{region}}
    GROUP BY p.period_start, c.region
),
complaints AS (
    SELECT p.period_start, t.region, count(*) AS complaints
    FROM tickets t
    JOIN periods p
      ON local_date(t.created_at) >= p.period_start AND local_date(t.created_at) < p.period_end
    WHERE t.kind = 'complaint'
      AND t.created_at >= local_midnight(period_start({{period}}, {{from}}))
      AND t.created_at < {{to:utc}}
      AND t.region LIKE {{region}}
    GROUP BY p.period_start, t.region
),
result AS (
    SELECT
        e.period_start AS period,
        e.region,
        coalesce(c.complaints, 0) AS complaints,
        e.open_at_start + e.opened AS exposure,
        coalesce(c.complaints, 0) * {{per}} / nullif(e.open_at_start + e.opened, 0) AS rate
    FROM exposure e
    LEFT JOIN complaints c ON c.period_start = e.period_start AND c.region = e.region
    WHERE e.open_at_start + e.opened > 0
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
ORDER BY result.period, result.region
