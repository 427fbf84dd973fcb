-- purpose: Hotline volume and service per period, region and queue: offered, answered,
--   abandoned, answer rate, service level, ASA and AHT.
-- formula: offered = inbound calls that reached a queue (queued_at set);
--   answered = offered calls with answered_at; abandoned = outcome 'abandoned';
--   short abandons = abandoned after waiting less than {short} s;
--   answer rate = answered / offered; abandon rate = abandoned / offered;
--   service level = answered within {t} s of queueing / offered;
--   service level excluding short abandons = answered within {t} s / (offered - short abandons);
--   ASA = total wait of answered / answered; AHT = (talk + hold + wrap) of answered / answered.
--   Rates are NULL when their denominator is 0.
-- grain: one row per period (local day, ISO week starting Monday, or month of ivr_entered_at) x region x queue
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text day day, week or month
-- param: region text % region code (LIKE pattern; % for all)
-- param: t int 20 service-level threshold in seconds
-- param: short int 5 an abandon after less than this many seconds of waiting is short
WITH offered AS (
    SELECT
        local_trunc({{period}}, ivr_entered_at) AS period,
        region,
        queue,
        answered_at IS NOT NULL AS answered,
        outcome = 'abandoned' AS abandoned,
        wait_s,
        talk_s,
        hold_s,
        wrap_s
    FROM calls
    WHERE direction = 'inbound'
      AND queued_at IS NOT NULL
      AND ivr_entered_at >= {{from:utc}}
      AND ivr_entered_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
)
SELECT
    period,
    region,
    queue,
    count(*) AS offered,
    count(*) FILTER (WHERE answered) AS answered,
    count(*) FILTER (WHERE abandoned) AS abandoned,
    count(*) FILTER (WHERE abandoned AND wait_s < {{short}}) AS short_abandons,
    CAST(count(*) FILTER (WHERE answered) AS DOUBLE) / nullif(count(*), 0) AS answer_rate,
    CAST(count(*) FILTER (WHERE abandoned) AS DOUBLE) / nullif(count(*), 0) AS abandon_rate,
    CAST(count(*) FILTER (WHERE answered AND wait_s <= {{t}}) AS DOUBLE)
        / nullif(count(*), 0) AS service_level,
    CAST(count(*) FILTER (WHERE answered AND wait_s <= {{t}}) AS DOUBLE)
        / nullif(count(*) - count(*) FILTER (WHERE abandoned AND wait_s < {{short}}), 0)
        AS service_level_excl_short,
    CAST(sum(wait_s) FILTER (WHERE answered) AS DOUBLE)
        / nullif(count(*) FILTER (WHERE answered), 0) AS asa_s,
    CAST(sum(coalesce(talk_s, 0) + coalesce(hold_s, 0) + coalesce(wrap_s, 0)) FILTER (WHERE answered) AS DOUBLE)
        / nullif(count(*) FILTER (WHERE answered), 0) AS aht_s
FROM offered
GROUP BY period, region, queue
ORDER BY period, region, queue
