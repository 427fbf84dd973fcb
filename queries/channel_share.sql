-- purpose: Channel share: how customers reach the company — hotline, IVR, branch hall,
--   web, app, WeChat, letter, email, regulator — per period and region.
-- formula: contacts = inbound calls by their channel (hotline, ivr, callback) by local day
--   of ivr_entered_at + branch-hall visits (channel 'hall') by local day of arrived_at +
--   tickets raised through any other channel (web, app, wechat, letter, email, walk_in,
--   regulator_transfer, other) by local day of created_at; tickets raised at the hotline
--   or the counter are not counted again (their call or visit is). share = the
--   channel's contacts / all contacts of the period and region.
-- grain: one row per period (local day, week, month, quarter, half year or year) x region x channel with contacts
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text month day, week, month, quarter, half (1 Jan-30 Jun, 1 Jul-31 Dec) or year
-- param: region text % region code (LIKE pattern; % for all)
WITH contacts AS (
    SELECT local_trunc({{period}}, ivr_entered_at) AS period, region, channel, count(*) AS n
    FROM calls
    WHERE direction = 'inbound'
      AND ivr_entered_at >= {{from:utc}}
      AND ivr_entered_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
    GROUP BY 1, region, channel
    UNION ALL
    SELECT local_trunc({{period}}, arrived_at), region, 'hall', count(*)
    FROM visits
    WHERE arrived_at >= {{from:utc}}
      AND arrived_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
    GROUP BY 1, region
    UNION ALL
    SELECT local_trunc({{period}}, created_at), region, channel, count(*)
    FROM tickets
    WHERE channel NOT IN ('hotline', 'counter')
      AND created_at >= {{from:utc}}
      AND created_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
    GROUP BY 1, region, channel
),
per_channel AS (
    SELECT period, region, channel, sum(n) AS contacts
    FROM contacts
    GROUP BY period, region, channel
),
result AS (
    SELECT
        period,
        region,
        channel,
        CASE channel WHEN 'hotline' THEN '热线' WHEN 'ivr' THEN '自助语音' WHEN 'callback' THEN '回呼'
            WHEN 'hall' THEN '营业厅' WHEN 'web' THEN '网站' WHEN 'app' THEN '手机APP'
            WHEN 'wechat' THEN '微信' WHEN 'letter' THEN '信函' WHEN 'email' THEN '电子邮件'
            WHEN 'walk_in' THEN '上门' WHEN 'regulator_transfer' THEN '监管转办' ELSE '其他' END
            AS channel_name,
        contacts,
        CAST(contacts AS DOUBLE) / sum(contacts) OVER (PARTITION BY period, region) AS share
    FROM per_channel
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
ORDER BY result.period, result.region, result.channel
