//! Changing the password from the account page. It needs a step-up proof for the session and the
//! current password; afterwards every other session and grant is gone (the sign-out rule in
//! `sessions::grants`) and the current session continues under a new id.
//!
//! Guesses of the current password count against the same limits and lockout as sign-in (per account
//! and address, and per account across addresses), so a stolen session cookie cannot brute-force the
//! password through this form.

use serde_json::json;

use super::{check_password, hashing_error, page_url, user_actor, wake_mailer};
use crate::audit::{Action, NewAuditEvent};
use crate::crypto::password::PasswordError;
use crate::deps::{HasClock, HasConfig, HasDb, HasEphemeral, HasMailer, HasPasswords, HasSecrets};
use crate::error::{Error, Result};
use crate::mfa::step_up::StepUp;
use crate::model::email::OutgoingEmail;
use crate::model::orgs::Organization;
use crate::model::sessions::Session;
use crate::model::users::{Credential, CredentialKind, User};
use crate::sessions::grants::SignOut;
use crate::sessions::service::{self as sessions, ClientInfo};

/// Returns the replacement session and its cookie value. `proof` is the step-up check for this very
/// session (a password change is a sensitive action); what the change ends is decided by
/// [`sessions::grants::SignOut::PasswordChanged`].
#[allow(clippy::too_many_arguments)]
pub async fn change(
    deps: &(impl HasClock + HasConfig + HasDb + HasEphemeral + HasMailer + HasPasswords + HasSecrets),
    org: &Organization,
    proof: &StepUp,
    session: &Session,
    user: &User,
    current: &str,
    new_password: &str,
    client: &ClientInfo,
) -> Result<(Session, String)> {
    proof.check_session(org, user, session)?;
    let attempt =
        match crate::signin::count_password_attempt(deps, org, &user.email, client).await? {
            Ok(attempt) => attempt,
            Err(refused) => {
                let audit = NewAuditEvent::new(
                    &org.id,
                    &user_actor(user, client),
                    Action::PasswordChangeRateLimited,
                )
                .target("user", &user.id)
                .change(None, Some(refused.detail));
                deps.db().tenant(&org.id).append_audit(&audit).await?;
                return Err(Error::RateLimited(refused.limited));
            }
        };
    let stored = deps
        .db()
        .tenant(&org.id)
        .credentials(&user.id, CredentialKind::Password)
        .await?
        .into_iter()
        .next();
    let current_ok = match &stored {
        Some(c) => {
            let text = String::from_utf8_lossy(&c.secret).into_owned();
            match deps.passwords().verify(current, &text).await {
                Ok(v) => v.ok,
                Err(PasswordError::UnknownFormat) => false,
                Err(e) => return Err(hashing_error(e)),
            }
        }
        None => false,
    };
    if !current_ok {
        let audit = NewAuditEvent::new(
            &org.id,
            &user_actor(user, client),
            Action::PasswordChangeFailed,
        )
        .target("user", &user.id);
        deps.db().tenant(&org.id).append_audit(&audit).await?;
        return Err(Error::invalid(
            "current_password",
            "is not your current password",
        ));
    }
    attempt.succeeded(deps).await;
    check_password(org, new_password, &user.email, user.name.as_deref())
        .map_err(|e| rename_field(e, "new_password"))?;
    let secret = deps
        .passwords()
        .hash(new_password)
        .await
        .map_err(hashing_error)?;
    let now = deps.now();
    let credential = Credential::password(&user.id, secret, now);
    // The session continues, but under a new id: a privilege change never keeps an old cookie valid.
    let (replacement, token) = sessions::new_session(
        deps,
        org,
        user,
        session.amr.clone(),
        session
            .acr
            .as_deref()
            .unwrap_or(crate::model::sessions::ACR_PASSWORD),
        client,
    );
    let replacement = Session {
        auth_time: session.auth_time,
        mfa_at: session.mfa_at,
        ..replacement
    };
    let notice = OutgoingEmail::new(
        deps.now(),
        &org.id,
        &user.email,
        &format!("Your {} password was changed", org.name),
        format!(
            "The password of your {org} account was changed just now, and your other devices were signed out.\n\n\
             If this was not you, reset your password at once:\n{reset}\n",
            org = org.name,
            reset = page_url(deps, org, "forgot-password"),
        ),
    );
    let audit = NewAuditEvent::new(&org.id, &user_actor(user, client), Action::PasswordChanged)
        .target("user", &user.id)
        .change(
            None,
            Some(json!({"other_sessions_revoked": true, "session": replacement.public_id})),
        );
    let version = deps
        .db()
        .tenant(&org.id)
        .replace_password(
            &user.id,
            &credential,
            None,
            Some(&replacement),
            Some(&notice),
            SignOut::PasswordChanged.ends_everything(),
            now,
            &audit,
        )
        .await?
        .ok_or_else(|| Error::Internal("password replacement wrote nothing".into()))?;
    wake_mailer(deps);
    Ok((
        Session {
            session_version: version,
            ..replacement
        },
        token,
    ))
}

fn rename_field(e: Error, field: &str) -> Error {
    match e {
        Error::Invalid { message, .. } => Error::invalid(field, message),
        other => other,
    }
}
