//! The dimensions events refer to, as a head office's master data would export them: the
//! organisation (head office → regions → cities → branches, and each region's contact
//! centre) with display names, the staff with the units they work in, the hotline queues
//! with their service-level thresholds, and the ticket and call categories with theirs.

use kefu_model::Table;
use kefu_model::vocab::{OrgLevel, StaffRole, TicketKind};

use crate::record::{FieldWriter, Row};
use crate::sim::{COMPLAINT_CATEGORIES, OTHER_CATEGORIES, QUEUES};
use crate::world::World;

/// When the organisation, its staff and its settings date from: 2016-01-01 local.
const FOUNDED: i64 = 1_451_577_600;
/// Branches per city.
const BRANCHES_PER_CITY: usize = 3;
const HEADQUARTERS: &str = "hq";

#[derive(Debug, Clone)]
pub struct OrgUnitRow {
    pub unit_id: String,
    pub level: OrgLevel,
    pub parent_id: Option<String>,
    pub region: Option<String>,
    pub name_zh: String,
    pub name_en: String,
}

#[derive(Debug, Clone)]
pub struct StaffRow {
    pub staff_id: String,
    pub region: String,
    pub unit_id: String,
    pub role: StaffRole,
    pub name_zh: String,
}

#[derive(Debug, Clone)]
pub struct QueueRow {
    pub queue: &'static str,
    pub name_zh: &'static str,
    pub name_en: &'static str,
    /// None for the IVR and outbound queues (no service level: nobody waits for an agent).
    pub service_level_s: Option<i32>,
    pub target_percent: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct CategoryRow {
    pub category: &'static str,
    pub kind: Option<TicketKind>,
    pub name_zh: &'static str,
    pub name_en: &'static str,
    pub product_line: &'static str,
}

/// Every dimension row of a world.
#[derive(Debug, Clone, Default)]
pub struct Dimensions {
    pub org_units: Vec<OrgUnitRow>,
    pub staff: Vec<StaffRow>,
    pub queues: Vec<QueueRow>,
    pub categories: Vec<CategoryRow>,
}

/// A region code as an English name: `xian` → `Xian`.
fn title(code: &str) -> String {
    let mut chars = code.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

const DIGITS_ZH: [&str; 10] = ["零", "一", "二", "三", "四", "五", "六", "七", "八", "九"];

/// 1–99 in Chinese numerals.
fn number_zh(n: usize) -> String {
    match n {
        0..=9 => DIGITS_ZH[n].to_string(),
        10 => "十".into(),
        11..=19 => format!("十{}", DIGITS_ZH[n - 10]),
        _ if n.is_multiple_of(10) => format!("{}十", DIGITS_ZH[n / 10]),
        _ => format!("{}十{}", DIGITS_ZH[n / 10], DIGITS_ZH[n % 10]),
    }
}

const SURNAMES: [&str; 20] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "高", "罗",
];
const GIVEN: [&str; 24] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平", "刚", "桂英", "晓东", "雪梅",
];

/// A Chinese name drawn from the staff id (FNV-1a), the same in every run.
fn person_name(id: &str) -> String {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!(
        "{}{}",
        SURNAMES[(h % 20) as usize],
        GIVEN[((h >> 8) % 24) as usize]
    )
}

/// Chinese and English names of the generator's queues and categories.
fn label(code: &str) -> (&'static str, &'static str) {
    match code {
        "billing" => ("账务查询", "Billing"),
        "technical" => ("故障报修", "Technical support"),
        "sales" => ("业务办理", "Sales"),
        "general" => ("综合咨询", "General enquiries"),
        "complaints" => ("投诉专席", "Complaints"),
        "vip" => ("VIP专席", "VIP"),
        "billing_dispute" => ("账单争议", "Billing dispute"),
        "network_quality" => ("网络质量", "Network quality"),
        "install_delay" => ("装机超时", "Installation delay"),
        "unclear_fees" => ("收费不明", "Unclear fees"),
        "staff_attitude" => ("服务态度", "Staff attitude"),
        "long_wait" => ("排队过长", "Long wait"),
        "app_malfunction" => ("APP故障", "App malfunction"),
        "marketing_harassment" => ("营销骚扰", "Marketing harassment"),
        "number_porting" => ("携号转网", "Number porting"),
        "repair_delay" => ("维修超时", "Repair delay"),
        "privacy" => ("信息安全", "Privacy"),
        "contract_terms" => ("合约纠纷", "Contract terms"),
        "equipment" => ("终端设备", "Equipment"),
        "broadband_install" => ("宽带新装", "Broadband installation"),
        "line_repair" => ("线路报修", "Line repair"),
        "relocation" => ("移机", "Relocation"),
        "removal" => ("拆机", "Removal"),
        "billing_question" => ("账单咨询", "Billing question"),
        "plan_question" => ("套餐咨询", "Plan question"),
        "coverage_question" => ("覆盖咨询", "Coverage question"),
        "service_suggestion" => ("服务建议", "Service suggestion"),
        "staff_praise" => ("员工表扬", "Staff praise"),
        "billing_inquiry" => ("账务咨询", "Billing enquiry"),
        "fault_report" => ("故障申告", "Fault report"),
        "plan_change" => ("套餐变更", "Plan change"),
        "general_inquiry" => ("一般咨询", "General enquiry"),
        "complaint" => ("投诉", "Complaint"),
        "vip_service" => ("VIP服务", "VIP service"),
        "ivr" => ("自助语音", "IVR"),
        "self_service" => ("自助服务", "Self-service"),
        "callback" => ("回呼", "Callback"),
        "outbound" => ("外呼", "Outbound campaigns"),
        "marketing" => ("营销外呼", "Marketing calls"),
        _ => ("其他", "Other"),
    }
}

/// The product line of a category (the breakdown the complaint-limit rule asks for).
fn product_line(category: &str) -> &'static str {
    match category {
        "network_quality" | "coverage_question" | "number_porting" | "marketing_harassment" => {
            "mobile"
        }
        "install_delay" | "repair_delay" | "broadband_install" | "line_repair" | "relocation"
        | "removal" | "equipment" | "fault_report" => "broadband",
        "app_malfunction" => "digital",
        _ => "general",
    }
}

impl Dimensions {
    pub fn of(world: &World) -> Dimensions {
        let mut d = Dimensions::default();
        d.org_units.push(OrgUnitRow {
            unit_id: HEADQUARTERS.into(),
            level: OrgLevel::Headquarters,
            parent_id: None,
            region: None,
            name_zh: "总部".into(),
            name_en: "Headquarters".into(),
        });
        for region in &world.regions {
            let (code, zh, en) = (&region.code, region.zh, title(&region.code));
            d.org_units.push(OrgUnitRow {
                unit_id: code.clone(),
                level: OrgLevel::Region,
                parent_id: Some(HEADQUARTERS.into()),
                region: Some(code.clone()),
                name_zh: zh.into(),
                name_en: en.clone(),
            });
            d.org_units.push(OrgUnitRow {
                unit_id: region.call_centre.clone(),
                level: OrgLevel::CallCentre,
                parent_id: Some(code.clone()),
                region: Some(code.clone()),
                name_zh: format!("{zh}客服中心"),
                name_en: format!("{en} Contact Centre"),
            });
            for (b, branch) in region.branches.iter().enumerate() {
                let city = b / BRANCHES_PER_CITY + 1;
                let city_id = format!("{code}-c{city}");
                if b.is_multiple_of(BRANCHES_PER_CITY) {
                    d.org_units.push(OrgUnitRow {
                        unit_id: city_id.clone(),
                        level: OrgLevel::City,
                        parent_id: Some(code.clone()),
                        region: Some(code.clone()),
                        name_zh: format!("{zh}{}区分公司", number_zh(city)),
                        name_en: format!("{en} District {city}"),
                    });
                }
                d.org_units.push(OrgUnitRow {
                    unit_id: branch.id.clone(),
                    level: OrgLevel::Branch,
                    parent_id: Some(city_id),
                    region: Some(code.clone()),
                    name_zh: format!("{zh}{}号营业厅", number_zh(b + 1)),
                    name_en: format!("{en} Hall {}", b + 1),
                });
                for staff_id in &branch.staff_ids {
                    d.staff.push(StaffRow::new(
                        staff_id,
                        code,
                        &branch.id,
                        StaffRole::Counter,
                    ));
                }
            }
            for n in 1..=region.agents {
                let id = region.agent_id(n);
                d.staff.push(StaffRow::new(
                    id,
                    code,
                    &region.call_centre,
                    StaffRole::Agent,
                ));
            }
            for n in 1..=region.owners {
                let id = region.owner_id(n);
                d.staff
                    .push(StaffRow::new(id, code, code, StaffRole::Handler));
            }
        }
        // The IVR's and the outbound calls' queues and categories besides the agents'.
        let outbound = [
            ("ivr", "self_service"),
            ("callback", "callback"),
            ("outbound", "marketing"),
        ];
        for queue in QUEUES.iter().map(|q| q.0).chain(outbound.map(|o| o.0)) {
            let (name_zh, name_en) = label(queue);
            let (service_level_s, target_percent) = match queue {
                "vip" => (Some(10), Some(90)),
                "sales" | "complaints" => (Some(30), Some(80)),
                "ivr" | "callback" | "outbound" => (None, None),
                _ => (Some(20), Some(80)),
            };
            d.queues.push(QueueRow {
                queue,
                name_zh,
                name_en,
                service_level_s,
                target_percent,
            });
        }
        let complaints = COMPLAINT_CATEGORIES
            .iter()
            .map(|c| (Some(TicketKind::Complaint), c.0));
        let others = OTHER_CATEGORIES.iter().map(|c| (Some(c.0), c.1));
        let calls = QUEUES
            .iter()
            .map(|q| q.4)
            .chain(outbound.map(|o| o.1))
            .map(|c| (None, c));
        for (kind, category) in complaints.chain(others).chain(calls) {
            let (name_zh, name_en) = label(category);
            d.categories.push(CategoryRow {
                category,
                kind,
                name_zh,
                name_en,
                product_line: product_line(category),
            });
        }
        d
    }
}

impl OrgUnitRow {
    pub fn write(&self, _: &World, f: &mut impl FieldWriter) {
        f.text(Some(&self.unit_id));
        f.term(Some(self.level.term()));
        f.text(self.parent_id.as_deref());
        f.text(self.region.as_deref());
        f.text(Some(&self.name_zh));
        f.text(Some(&self.name_en));
        f.timestamp(Some(FOUNDED));
        f.timestamp(None);
        f.timestamp(None);
        f.end_row();
    }
}

impl StaffRow {
    fn new(staff_id: &str, region: &str, unit_id: &str, role: StaffRole) -> Self {
        StaffRow {
            staff_id: staff_id.to_string(),
            region: region.to_string(),
            unit_id: unit_id.to_string(),
            role,
            name_zh: person_name(staff_id),
        }
    }

    pub fn write(&self, _: &World, f: &mut impl FieldWriter) {
        f.text(Some(&self.staff_id));
        f.text(Some(&self.region));
        f.text(Some(&self.unit_id));
        f.term(Some(self.role.term()));
        f.text(Some(&self.name_zh));
        f.text(None);
        f.timestamp(Some(FOUNDED));
        f.timestamp(None);
        f.timestamp(None);
        f.end_row();
    }
}

impl QueueRow {
    pub fn write(&self, _: &World, f: &mut impl FieldWriter) {
        f.text(Some(self.queue));
        f.text(Some(self.name_zh));
        f.text(Some(self.name_en));
        f.seconds(self.service_level_s);
        f.opt_int(self.target_percent);
        f.timestamp(Some(FOUNDED));
        f.timestamp(None);
        f.end_row();
    }
}

impl CategoryRow {
    pub fn write(&self, _: &World, f: &mut impl FieldWriter) {
        f.text(Some(self.category));
        f.term(self.kind.map(|k| k.term()));
        f.text(Some(self.name_zh));
        f.text(Some(self.name_en));
        f.text(Some(self.product_line));
        f.timestamp(Some(FOUNDED));
        f.timestamp(None);
        f.end_row();
    }
}

/// The tables this module writes, in [`Table::ALL`] order.
pub const TABLES: [Table; 4] = [
    Table::OrgUnits,
    Table::Staff,
    Table::Queues,
    Table::Categories,
];

// Each dimension is a Row, so the sinks write it like the event tables.
crate::record::impl_row!(OrgUnitRow => OrgUnits, StaffRow => Staff, QueueRow => Queues, CategoryRow => Categories);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_numbers() {
        let got: Vec<String> = [1, 9, 10, 12, 20, 21, 99].map(number_zh).to_vec();
        assert_eq!(got, ["一", "九", "十", "十二", "二十", "二十一", "九十九"]);
    }
}
