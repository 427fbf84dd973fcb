-- purpose: Customers lost per period and region by churn type (流失类型): natural 自然,
--   competitive 竞争 (ported away), malicious 恶意, service failure 过失 — the share of
--   each type and its rate against the customers at the period's start.
-- formula: closed = customers whose closed_at falls in the period (local days), by
--   close_reason ('unknown' where the export gave none); share = the type's closed /
--   all closed of the period and region; at start = customers opened before the period
--   and not closed before it; rate = closed / at start. Periods start at the one
--   holding {from} and are cut at {to}.
-- grain: one row per period (month, quarter, half year or year) x region x churn type with closures
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-04-01 end local day, exclusive
-- param: period text month month, quarter, half (1 Jan-30 Jun, 1 Jul-31 Dec) or year
-- param: region text % region code (LIKE pattern; % for all)
WITH periods AS (
    SELECT period_start, least(period_shift({{period}}, period_start, 1), {{to}}) AS period_end
    FROM (
        SELECT period_shift({{period}}, period_start({{period}}, {{from}}), n) AS period_start
        FROM (SELECT unnest(generate_series(0, date_diff('month', {{from}}, {{to}}))) AS n)
    )
    WHERE period_start < {{to}}
),
cust AS (
    SELECT region, local_date(opened_at) AS opened, local_date(closed_at) AS closed,
           coalesce(close_reason, 'unknown') AS churn_type
    FROM customers
    WHERE region LIKE {{region}}
),
at_start AS (
    SELECT p.period_start, c.region, count(*) AS at_start
    FROM periods p CROSS JOIN cust c
    WHERE c.opened < p.period_start AND (c.closed IS NULL OR c.closed >= p.period_start)
    GROUP BY p.period_start, c.region
),
lost AS (
    SELECT p.period_start, c.region, c.churn_type, count(*) AS closed
    FROM periods p JOIN cust c ON c.closed >= p.period_start AND c.closed < p.period_end
    GROUP BY p.period_start, c.region, c.churn_type
),
result AS (
    SELECT
        l.period_start AS period,
        l.region,
        l.churn_type,
        CASE l.churn_type WHEN 'natural' THEN '自然' WHEN 'competitive' THEN '竞争'
            WHEN 'malicious' THEN '恶意' WHEN 'service_failure' THEN '过失' ELSE '未知' END
            AS churn_type_name,
        l.closed,
        CAST(l.closed AS DOUBLE) / sum(l.closed) OVER (PARTITION BY l.period_start, l.region) AS share,
        coalesce(s.at_start, 0) AS at_start,
        CAST(l.closed AS DOUBLE) / nullif(s.at_start, 0) AS rate
    FROM lost l
    LEFT JOIN at_start s ON s.period_start = l.period_start AND s.region = l.region
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
ORDER BY result.period, result.region, result.churn_type
