-- purpose: Complaint volume per period and region, with the change against the previous
--   period (环比) and against the same period a year earlier (同比).
-- formula: complaints = tickets of kind 'complaint' by local day of created_at;
--   change = (this period - comparison period) / comparison period, NULL when the
--   comparison period had none; a week's year-earlier period is 52 weeks before. A
--   region with complaints in the previous or the year-earlier period but none in this
--   one is listed with 0 (a change of -100%), not left out. Periods are whole: the
--   first is the one holding {from}, and the comparison periods are read in full.
-- grain: one row per period (day, week starting Monday, month, quarter, half year or year) x region with complaints in it, the period before or the year-earlier one
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text month day, week, month, quarter, half (1 Jan-30 Jun, 1 Jul-31 Dec) or year
-- param: region text % region code (LIKE pattern; % for all)
WITH counts AS (
    SELECT
        local_trunc({{period}}, created_at) AS period,
        region,
        count(*) AS complaints
    FROM tickets
    WHERE kind = 'complaint'
      -- From the year-earlier period of the first (52 weeks before, for weeks) on.
      AND created_at >= local_midnight(CASE {{period}}
          WHEN 'week' THEN period_shift('week', period_start('week', {{from}}), -52)
          ELSE period_shift('year', period_start({{period}}, {{from}}), -1) END)
      AND created_at < {{to:utc}}
      AND region LIKE {{region}}
    GROUP BY 1, region
),
keys AS (
    -- Each period with complaints, and the periods that compare against one.
    SELECT period, region FROM counts
    UNION
    SELECT period_shift({{period}}, period, 1), region FROM counts
    UNION
    SELECT CASE {{period}} WHEN 'week' THEN period_shift('week', period, 52)
        ELSE period_shift('year', period, 1) END, region FROM counts
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
   AND p.period = period_shift({{period}}, k.period, -1)
LEFT JOIN counts y
    ON y.region = k.region
   AND y.period = CASE {{period}} WHEN 'week' THEN period_shift('week', k.period, -52)
        ELSE period_shift('year', k.period, -1) END
WHERE k.period >= period_start({{period}}, {{from}})
  AND k.period < {{to}}
ORDER BY k.period, k.region
