-- purpose: How the hotline served its inbound contacts: the share the IVR settled
--   itself, the transfer rate of calls agents handled, and the post-call survey.
-- formula: inbound = inbound calls (IVR and hotline); IVR self-service share = calls
--   with outcome ivr_self_service / inbound; handled = inbound calls an agent answered;
--   transfer rate = handled calls with at least one transfer / handled; surveyed =
--   handled calls with a post-call score (1 worst … 5 best); mean score = their average;
--   satisfied share = scores of 4 or 5 / surveyed. Transfer time is not in the model
--   (the calls table has the number of transfers, not when they happened).
-- grain: one row per period (local day, week, month, quarter, half year or year of ivr_entered_at) x region
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text month day, week, month, quarter, half (1 Jan-30 Jun, 1 Jul-31 Dec) or year
-- param: region text % region code (LIKE pattern; % for all)
WITH result AS (
    SELECT
        local_trunc({{period}}, ivr_entered_at) AS period,
        region,
        count(*) AS inbound,
        count(*) FILTER (WHERE outcome = 'ivr_self_service') AS ivr_self_service,
        CAST(count(*) FILTER (WHERE outcome = 'ivr_self_service') AS DOUBLE) / count(*) AS ivr_share,
        count(answered_at) AS handled,
        count(*) FILTER (WHERE answered_at IS NOT NULL AND transfers > 0) AS transferred,
        CAST(count(*) FILTER (WHERE answered_at IS NOT NULL AND transfers > 0) AS DOUBLE)
            / nullif(count(answered_at), 0) AS transfer_rate,
        count(score) FILTER (WHERE answered_at IS NOT NULL) AS surveyed,
        avg(CAST(score AS DOUBLE)) FILTER (WHERE answered_at IS NOT NULL) AS mean_score,
        CAST(count(*) FILTER (WHERE answered_at IS NOT NULL AND score >= 4) AS DOUBLE)
            / nullif(count(score) FILTER (WHERE answered_at IS NOT NULL), 0) AS satisfied_share
    FROM calls
    WHERE direction = 'inbound'
      AND ivr_entered_at >= {{from:utc}}
      AND ivr_entered_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
    GROUP BY 1, region
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
ORDER BY 1, result.region
