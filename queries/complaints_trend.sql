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
shifted AS (
    -- Each count three times, from one scan of counts: in its own period, as the
    -- previous period of the next one, and as the year-earlier period of the one a year
    -- (52 weeks) on. (Joining counts to itself would read the tickets once per join.)
    SELECT
        CASE s.slot
            WHEN 0 THEN c.period
            WHEN 1 THEN period_shift({{period}}, c.period, 1)
            ELSE CASE {{period}} WHEN 'week' THEN period_shift('week', c.period, 52)
                ELSE period_shift('year', c.period, 1) END
        END AS period,
        c.region,
        CASE WHEN s.slot = 0 THEN c.complaints END AS complaints,
        CASE WHEN s.slot = 1 THEN c.complaints END AS previous_period,
        CASE WHEN s.slot = 2 THEN c.complaints END AS year_earlier
    FROM counts c
    CROSS JOIN (VALUES (0), (1), (2)) AS s(slot)
),
result AS (
    SELECT
        period,
        region,
        coalesce(sum(complaints), 0) AS complaints,
        coalesce(sum(previous_period), 0) AS previous_period,
        CAST(coalesce(sum(complaints), 0) - sum(previous_period) AS DOUBLE) / sum(previous_period)
            AS change_vs_previous,
        coalesce(sum(year_earlier), 0) AS year_earlier,
        CAST(coalesce(sum(complaints), 0) - sum(year_earlier) AS DOUBLE) / sum(year_earlier)
            AS change_vs_year_earlier
    FROM shifted
    WHERE period >= period_start({{period}}, {{from}})
      AND period < {{to}}
    GROUP BY period, region
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
ORDER BY result.period, result.region
