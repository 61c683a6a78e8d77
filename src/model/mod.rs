//! Plain records shared by the store and the features: what a row holds, with no I/O and no policy. Below
//! the store in the layers, so the store can name them without importing the features that use them.

pub mod apps;
pub mod audit;
pub mod email;
pub mod grants;
pub mod keys;
pub mod onetime;
pub mod orgs;
pub mod sessions;
pub mod settings;
pub mod staff;
pub mod users;

use crate::kernel::OrgId;

/// A record that belongs to exactly one organization. The store's door already filters by organization;
/// a domain rule that binds a proof to an organization (a step-up proof, say) asks the record itself, so
/// the comparison is written once, here.
pub trait OrgOwned {
    fn org_id(&self) -> &OrgId;

    fn belongs_to(&self, org: &OrgId) -> bool {
        self.org_id() == org
    }
}

macro_rules! org_owned {
    ($($record:ty),* $(,)?) => {
        $(impl OrgOwned for $record {
            fn org_id(&self) -> &OrgId {
                &self.org_id
            }
        })*
    };
}

/// An organization belongs to itself: `org.belongs_to(&id)` says whether it is that one.
impl OrgOwned for orgs::Organization {
    fn org_id(&self) -> &OrgId {
        &self.id
    }
}

org_owned!(
    sessions::Session,
    users::User,
    apps::Application,
    grants::Grant,
    audit::AuditEvent,
    staff::ApiKey,
    staff::Invitation,
    staff::StaffMember,
);
