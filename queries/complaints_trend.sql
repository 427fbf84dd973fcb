-- purpose: Complaint volume per period and region, with the change against the previous
--   period (环比) and against the same period a year earlier (同比).
-- formula: complaints = tickets of kind 'complaint' by local day of created_at;
--   change = (this period - comparison period) / comparison period, NULL when the
--   comparison period had none; a week's year-earlier period is 52 weeks before. A
--   region with complaints in the previous or the year-earlier period but none in this
--   one is listed with 0 (a change of -100%), not left out. Periods are whole: the
--   first is the one holding {from}, and the comparison periods are read in full.
-- grain: one row per period (day, week starting Monday, month, quarter or year) x region with complaints in it, the period before or the year-earlier one
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text month day, week, month, quarter or year
-- param: region text % region code (LIKE pattern; % for all)
WITH counts AS (
    SELECT
        local_trunc({{period}}, created_at) AS period,
        region,
        count(*) AS complaints
    FROM tickets
    WHERE kind = 'complaint'
      -- The year-earlier period of the first: a year (53 weeks for weeks) before it.
      AND created_at >= local_midnight(CAST(date_trunc({{period}}, CAST({{from}} AS TIMESTAMP)) - INTERVAL '1 year' - INTERVAL '7 days' AS DATE))
      AND created_at < {{to:utc}}
      AND region LIKE {{region}}
    GROUP BY 1, region
),
keys AS (
    -- Each period with complaints, and the periods that compare against one.
    SELECT period, region FROM counts
    UNION
    SELECT CAST(CAST(period AS TIMESTAMP) + CASE {{period}}
        WHEN 'day' THEN INTERVAL '1 day'
        WHEN 'week' THEN INTERVAL '7 days'
        WHEN 'month' THEN INTERVAL '1 month'
        WHEN 'quarter' THEN INTERVAL '3 months'
        ELSE INTERVAL '1 year' END AS DATE), region FROM counts
    UNION
    SELECT CAST(CAST(period AS TIMESTAMP) + CASE {{period}}
        WHEN 'week' THEN INTERVAL '364 days'
        ELSE INTERVAL '1 year' END AS DATE), region FROM counts
)
SELECT
    k.period,
    k.region,
    coalesce(c.complaints, 0) AS complaints,
    coalesce(p.complaints, 0) AS previous_period,
    CAST(coalesce(c.complaints, 0) - p.complaints AS DOUBLE) / p.complaints AS change_vs_previous,
    coalesce(y.complaints, 0) AS year_earlier,
    CAST(coalesce(c.complaints, 0) - y.complaints AS DOUBLE) / y.complaints AS change_vs_year_earlier
FROM keys k
LEFT JOIN counts c ON c.period = k.period AND c.region = k.region
LEFT JOIN counts p
    ON p.region = k.region
   AND p.period = CAST(CAST(k.period AS TIMESTAMP) - CASE {{period}}
        WHEN 'day' THEN INTERVAL '1 day'
        WHEN 'week' THEN INTERVAL '7 days'
        WHEN 'month' THEN INTERVAL '1 month'
        WHEN 'quarter' THEN INTERVAL '3 months'
        ELSE INTERVAL '1 year' END AS DATE)
LEFT JOIN counts y
    ON y.region = k.region
   AND y.period = CAST(CAST(k.period AS TIMESTAMP) - CASE {{period}}
        WHEN 'week' THEN INTERVAL '364 days'
        ELSE INTERVAL '1 year' END AS DATE)
WHERE k.period >= CAST(date_trunc({{period}}, CAST({{from}} AS TIMESTAMP)) AS DATE)
  AND k.period < {{to}}
ORDER BY k.period, k.region
