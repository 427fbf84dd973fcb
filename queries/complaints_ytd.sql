-- purpose: Complaints year to date against the same period last year (「截止到10月31日
--   …17宗，同比下降32%」), the rate per 10,000 customers and its change, and each
--   unit's rank among its peers (「暂列全市第四」): regions among regions, branches
--   among the branches of their region.
-- formula: year to date = local days from 1 January of the year holding the day before
--   {to} up to {to} (exclusive; to=2026-11-01 gives 1 January to 31 October); last
--   year = the same days a year earlier. complaints = tickets of kind 'complaint' by
--   local day of created_at, counted for the branch that received them; change =
--   (this year - last year) / last year, NULL when last year had none. exposure =
--   customers open at the period's start + opened in it (customers.branch_id), this
--   year and last; rate =
--   complaints x {per} / exposure; rate change = rate - last year's rate (points), and
--   relative = that / last year's rate. rank = 1 for the most complaints among the
--   peers (ties share a rank), out of peers.
-- grain: one row per region (level 'region') and per branch (level 'branch') with
--   complaints or customers in either year; name is the unit's Chinese name
--   (org_units), its code where it has none
-- param: to date 2026-02-01 end local day, exclusive (the figures are as of the day before)
-- param: region text % region code (LIKE pattern; % for all)
-- param: per float 10000 the rate's scale (complaints per this many customers)
WITH bounds AS (
    SELECT
        period_start('year', period_shift('day', {{to}}, -1)) AS ytd_from,
        period_shift('year', period_start('year', period_shift('day', {{to}}, -1)), -1) AS ly_from,
        period_shift('year', {{to}}, -1) AS ly_to
),
complaints AS (
    SELECT
        t.region,
        t.branch_id,
        count(*) FILTER (WHERE local_date(t.created_at) >= b.ytd_from) AS ytd,
        count(*) FILTER (WHERE local_date(t.created_at) < b.ly_to) AS last_year
    FROM tickets t CROSS JOIN bounds b
    WHERE t.kind = 'complaint'
      AND t.created_at >= local_midnight(period_shift('year',
          period_start('year', period_shift('day', {{to}}, -1)), -1))
      AND t.created_at < {{to:utc}}
      AND t.region LIKE {{region}}
      AND (local_date(t.created_at) >= b.ytd_from OR local_date(t.created_at) < b.ly_to)
    GROUP BY t.region, t.branch_id
),
exposure AS (
    SELECT
        c.region,
        c.branch_id,
        count(*) FILTER (WHERE local_date(c.opened_at) < {{to}}
            AND (c.closed_at IS NULL OR local_date(c.closed_at) >= b.ytd_from)) AS ytd,
        count(*) FILTER (WHERE local_date(c.opened_at) < b.ly_to
            AND (c.closed_at IS NULL OR local_date(c.closed_at) >= b.ly_from)) AS last_year
    FROM customers c CROSS JOIN bounds b
    WHERE c.region LIKE {{region}}
    GROUP BY c.region, c.branch_id
),
branches AS (
    SELECT
        coalesce(c.region, e.region) AS region,
        coalesce(c.branch_id, e.branch_id) AS branch_id,
        coalesce(c.ytd, 0) AS complaints,
        coalesce(c.last_year, 0) AS complaints_last_year,
        coalesce(e.ytd, 0) AS exposure,
        coalesce(e.last_year, 0) AS exposure_last_year
    FROM complaints c
    FULL OUTER JOIN exposure e ON e.region = c.region AND e.branch_id = c.branch_id
),
units AS (
    SELECT 'region' AS level, region AS unit_id, region,
           sum(complaints) AS complaints, sum(complaints_last_year) AS complaints_last_year,
           sum(exposure) AS exposure, sum(exposure_last_year) AS exposure_last_year
    FROM branches
    GROUP BY region
    UNION ALL
    SELECT 'branch', branch_id, region, complaints, complaints_last_year, exposure,
           exposure_last_year
    FROM branches
    WHERE branch_id IS NOT NULL
),
rates AS (
    SELECT
        u.*,
        CAST(u.complaints AS DOUBLE) * {{per}} / nullif(u.exposure, 0) AS rate,
        CAST(u.complaints_last_year AS DOUBLE) * {{per}} / nullif(u.exposure_last_year, 0)
            AS rate_last_year,
        -- Peers: all regions, or the branches of one region.
        CASE u.level WHEN 'branch' THEN u.region ELSE '' END AS peer_group
    FROM units u
    WHERE u.complaints + u.complaints_last_year + u.exposure + u.exposure_last_year > 0
)
SELECT
    r.level,
    r.unit_id,
    coalesce(o.name_zh, r.unit_id) AS name,
    r.region,
    r.complaints,
    r.complaints_last_year,
    CAST(r.complaints - r.complaints_last_year AS DOUBLE) / nullif(r.complaints_last_year, 0)
        AS change,
    rank() OVER (PARTITION BY r.level, r.peer_group ORDER BY r.complaints DESC) AS rank,
    count(*) OVER (PARTITION BY r.level, r.peer_group) AS peers,
    r.exposure,
    r.exposure_last_year,
    r.rate,
    r.rate_last_year,
    r.rate - r.rate_last_year AS rate_change,
    (r.rate - r.rate_last_year) / nullif(r.rate_last_year, 0) AS rate_change_relative
FROM rates r
LEFT JOIN org_units o ON o.unit_id = r.unit_id
ORDER BY r.level DESC, r.region, r.unit_id
