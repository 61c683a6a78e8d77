#!/usr/bin/env python3
"""Generates src/http/api/openapi.json (the admin API's OpenAPI 3.1 document)."""
import json
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else "openapi.json"


def ref(kind, name):
    return {"$ref": f"#/components/{kind}/{name}"}


def S(name):
    return ref("schemas", name)


TS = {"type": "integer", "format": "int64", "description": "Unix time, seconds."}


def ts(desc=None):
    d = dict(TS)
    if desc:
        d["description"] = desc
    return d


def nts(desc):
    return {"type": ["integer", "null"], "format": "int64", "description": desc}


def string(desc=None, **kw):
    d = {"type": "string", **kw}
    if desc:
        d["description"] = desc
    return d


# A name as `orgs::validate_name` accepts it: 1 to 100 characters (after trimming), no control characters.
CONTROL = "\\u0000-\\u001f\\u007f-\\u009f"
NAME_RULES = {"minLength": 1, "maxLength": 100, "pattern": f"^[^{CONTROL}]*[^\\s{CONTROL}][^{CONTROL}]*$"}


def name_string(desc, nullable=False):
    d = {"type": ["string", "null"] if nullable else "string", **NAME_RULES}
    d["description"] = desc
    return d


# An email address as a request carries it (checked and normalised by `users::address`).
EMAIL_RULES = {"format": "email", "maxLength": 254}


def nstring(desc=None, **kw):
    d = {"type": ["string", "null"], **kw}
    if desc:
        d["description"] = desc
    return d


def obj(props, required=None, desc=None, closed=False):
    d = {"type": "object"}
    if desc:
        d["description"] = desc
    d["properties"] = props
    if required is None:
        required = list(props)
    if required:
        d["required"] = required
    if closed:
        d["additionalProperties"] = False
    return d


def uint(desc=None, **kw):
    d = {"type": "integer", "minimum": 0, **kw}
    if desc:
        d["description"] = desc
    return d


def page(item, desc, always_null=False):
    cursor_desc = (
        "Always null: this list is returned in full."
        if always_null
        else "Pass as `cursor` to get the next page; null on the last page."
    )
    return obj(
        {
            "items": {"type": "array", "items": S(item)},
            "next_cursor": nstring(cursor_desc),
        },
        desc=desc,
    )


ROLES = ["owner", "team_admin", "member"]
SCOPES = [
    "org:read",
    "apps:write",
    "users:write",
    "settings:write",
    "signing_keys:write",
    "members:write",
    "owners:write",
    "api_keys:write",
    "audit:read",
    "org:delete",
]
KEY_SCOPES = [s for s in SCOPES if s not in ("api_keys:write", "owners:write", "org:delete")]
ACTIONS = ['org.created', 'org.updated', 'app.created', 'app.updated', 'app.secret_rotated', 'keys.created', 'keys.rotated', 'audit.chain_keyed', 'user.created', 'user.updated', 'user.disabled', 'user.enabled', 'user.signed_up', 'signup.existing_email', 'email.verification_requested', 'email.verified', 'credential.rehashed', 'login.succeeded', 'login.failed', 'login.refused', 'login.rate_limited', 'rate_limited', 'logout', 'session.revoked', 'user.sessions_revoked', 'session.revoked_others', 'password.changed', 'password.change_failed', 'password.change_rate_limited', 'password_reset.requested', 'password_reset.code_failed', 'password_reset.locked', 'password_reset.completed', 'mfa.enrolled', 'mfa.removed', 'mfa.succeeded', 'mfa.failed', 'mfa.step_up', 'mfa.email_code.sent', 'mfa.passkey.used', 'mfa.recovery_code.used', 'mfa.recovery_codes.generated', 'consent.granted', 'grant.created', 'grant.revoked', 'token.issued', 'token.refreshed', 'token.revoked', 'token.code_reuse_detected', 'token.refresh_reuse_detected', 'org.deleted', 'app.deleted', 'user.deleted', 'user.factors_reset', 'user.session_version_bumped', 'staff.created', 'staff.setup_link_issued', 'member.added', 'member.role_changed', 'member.removed', 'invitation.sent', 'invitation.revoked', 'invitation.accepted', 'api_key.created', 'api_key.rotated', 'api_key.revoked', 'api_key.read', 'audit.read', 'audit.exported', 'access.denied']

# ---------------------------------------------------------------- schemas

settings_fields = {
    "RateLimits": (
        "Per-organization rate limits.",
        {
            "login_attempts": ("u32", "Sign-in attempts per account and client address per `login_window_secs`."),
            "login_window_secs": ("u64", "Window of `login_attempts`, in seconds."),
            "login_lockout_max_secs": ("u64", "Longest lockout of an account-and-address pair, in seconds (lockouts double up to this); at least `login_window_secs`."),
            "login_attempts_per_account_per_hour": ("u32", "Password attempts per account per hour from addresses the account has not signed in from before."),
            "mfa_attempts": ("u32", "Wrong second-factor codes per user per `mfa_window_secs`."),
            "mfa_window_secs": ("u64", "Window of `mfa_attempts`, in seconds."),
            "mfa_lockout_max_secs": ("u64", "Longest second-step lockout, in seconds; at least `mfa_window_secs`."),
            "reset_per_email_per_hour": ("u32", "Password-reset requests per email address per hour."),
            "reset_per_ip_per_hour": ("u32", "Password-reset requests per client address per hour."),
            "code_requests_per_app_per_hour": ("u32", "Unauthenticated code or link requests per application (or organization) per hour."),
            "signup_per_ip_per_hour": ("u32", "Sign-ups per client address per hour."),
            "signup_per_email_per_hour": ("u32", "Sign-ups per email address per hour."),
            "token_requests_per_client_per_minute": ("u32", "Token-endpoint requests per client per minute."),
            "introspections_per_client_per_minute": ("u32", "Introspection requests per client per minute."),
        },
    ),
    "PasswordPolicy": (
        "What end-user passwords must satisfy.",
        {
            "min_length": ("u32", "Fewest characters (8 to 128)."),
            "max_length": ("u32", "Most characters (at least `min_length`, at most 128)."),
            "require_lowercase": ("bool", "Require a lower-case letter."),
            "require_uppercase": ("bool", "Require an upper-case letter."),
            "require_digit": ("bool", "Require a digit."),
            "require_symbol": ("bool", "Require a symbol."),
        },
    ),
    "MfaSettings": (
        "Second-factor policy.",
        {
            "policy": ("mfa_policy", "Who must use a second factor: `optional` (users choose), `admins` (owners and admins), `everyone`."),
            "step_up_minutes": ("u64", "Sensitive admin actions need a second-factor proof at most this many minutes old."),
        },
    ),
}


# The ranges `OrgSettings::validate` enforces field by field (rules between fields, such as a lockout no
# shorter than its window, are in the descriptions only).
SETTING_RANGES = {
    **{k: (1, None) for k in [
        "login_attempts", "login_window_secs", "login_attempts_per_account_per_hour", "mfa_attempts",
        "mfa_window_secs", "reset_per_email_per_hour", "reset_per_ip_per_hour",
        "code_requests_per_app_per_hour", "signup_per_ip_per_hour", "signup_per_email_per_hour",
        "token_requests_per_client_per_minute", "introspections_per_client_per_minute",
        "login_lockout_max_secs", "mfa_lockout_max_secs",
    ]},
    "min_length": (8, 128),
    "max_length": (8, 128),
    "step_up_minutes": (1, 1440),
}


def field_schema(kind, desc, name=None):
    low, high = SETTING_RANGES.get(name, (0, None))
    if kind == "u32":
        return uint(desc, minimum=low, maximum=high if high is not None else 4294967295)
    if kind == "u64":
        return uint(desc, minimum=low, **({"maximum": high} if high is not None else {}))
    if kind == "bool":
        return {"type": "boolean", "description": desc}
    if kind == "mfa_policy":
        return {"type": "string", "enum": ["optional", "admins", "everyone"], "description": desc}
    raise ValueError(kind)


schemas = {}

schemas["Problem"] = {
    "type": "object",
    "description": "An RFC 9457 problem document: the body of every error.",
    "properties": {
        "type": string(
            "`about:blank`, or `urn:latchkey:problem:step-up-required` when a fresh second-factor proof is needed.",
            examples=["about:blank"],
        ),
        "title": string("The HTTP status phrase.", examples=["Bad Request"]),
        "status": {"type": "integer", "minimum": 100, "maximum": 599, "description": "The HTTP status code."},
        "detail": string("What went wrong, for a person to read."),
        "field": string("For an invalid input: the field (or query parameter) at fault."),
    },
    "required": ["type", "title", "status"],
    "additionalProperties": True,
}

schemas["Role"] = {
    "type": "string",
    "enum": ROLES,
    "description": "A staff member's role in an organization.",
}
schemas["Scope"] = {
    "type": "string",
    "enum": SCOPES,
    "description": "A capability. Roles imply scopes (every role: `org:read`; Owner: all; Team Admin: all but `owners:write` and `org:delete`). API keys carry an explicit subset, never `api_keys:write`, `owners:write` or `org:delete`.",
}

for name, (desc, fields) in settings_fields.items():
    schemas[name] = obj(
        {k: field_schema(kind, d, k) for k, (kind, d) in fields.items()}, desc=desc
    )
    schemas[name + "Patch"] = obj(
        {k: field_schema(kind, d, k) for k, (kind, d) in fields.items()},
        required=[],
        desc=desc + " Only the fields given change; unknown fields are refused.",
        closed=True,
    )

org_settings_props = {
    "self_registration": {"type": "boolean", "description": "Whether end users may sign up themselves."},
    "session_idle_timeout_secs": uint("A session ends after this many idle seconds (60 to 86400, at most the absolute lifetime).", minimum=60, maximum=86400),
    "session_absolute_lifetime_secs": uint("A session ends this many seconds after sign-in (300 to 2592000).", minimum=300, maximum=2592000),
}
schemas["OrgSettings"] = obj(
    {
        **org_settings_props,
        "rate_limits": S("RateLimits"),
        "password_policy": S("PasswordPolicy"),
        "mfa": S("MfaSettings"),
    },
    desc="An organization's policy.",
)
schemas["OrgSettingsPatch"] = obj(
    {
        **org_settings_props,
        "rate_limits": S("RateLimitsPatch"),
        "password_policy": S("PasswordPolicyPatch"),
        "mfa": S("MfaSettingsPatch"),
    },
    required=[],
    desc="Settings to change, merged into the current ones: nested objects are merged key by key, other values replaced. A key that is not a setting, or a value of the wrong type, is refused (400, naming the setting).",
    closed=True,
)

schemas["Membership"] = obj(
    {
        "slug": string("The organization's slug."),
        "name": string("The organization's name."),
        "role": S("Role"),
    },
    desc="An organization the staff member belongs to, with their role there.",
)

schemas["StaffIdentity"] = obj(
    {
        "kind": {"type": "string", "const": "staff"},
        "id": string("The staff member's id."),
        "email": string(),
        "name": nstring(),
        "operator": {"type": "boolean", "description": "A platform operator: may create organizations and see all of them."},
        "csrf_token": string("Send this as `X-CSRF-Token` with every change made with this session."),
        "organizations": {"type": "array", "items": S("Membership")},
    },
    desc="A signed-in staff member.",
)
schemas["ApiKeyIdentity"] = obj(
    {
        "kind": {"type": "string", "const": "api_key"},
        "id": string("The API key's id."),
        "name": string(),
        "scopes": {"type": "array", "items": {"type": "string"}, "description": "The key's scope names, sorted."},
        "expires_at": nts("When the key stops working; null if it never expires."),
    },
    desc="An admin API key.",
)
schemas["Me"] = {
    "description": "Who the caller is.",
    "oneOf": [S("StaffIdentity"), S("ApiKeyIdentity")],
    "discriminator": {
        "propertyName": "kind",
        "mapping": {
            "staff": "#/components/schemas/StaffIdentity",
            "api_key": "#/components/schemas/ApiKeyIdentity",
        },
    },
}

schemas["OrgSummary"] = obj(
    {"slug": string(), "name": string(), "id": string("The organization's id.")},
    desc="An organization in a list.",
)
schemas["OrgSummaryPage"] = page("OrgSummary", "A page of organizations, in slug order.")

schemas["Organization"] = obj(
    {
        "id": string(),
        "slug": string("URL-safe name, used in the issuer URL."),
        "name": string(),
        "settings": S("OrgSettings"),
        "created_at": ts(),
        "updated_at": ts(),
    },
    desc="An organization.",
)
schemas["CreatedOrg"] = obj(
    {
        "organization": S("Organization"),
        "owner_added": {
            "type": "boolean",
            "description": "True when the owner already had a staff account and was made Owner at once; false when an Owner invitation was emailed instead.",
        },
    },
    desc="The organization created, and how its first Owner joins.",
)
schemas["OrgDetails"] = obj(
    {
        "id": string(),
        "slug": string(),
        "name": string(),
        "created_at": ts(),
        "your_role": {
            "type": ["string", "null"],
            "enum": ROLES + [None],
            "description": "The caller's role here; null for an API key.",
        },
        "your_scopes": {"type": "array", "items": S("Scope"), "description": "What the caller may do here."},
    },
    desc="An organization and the caller's access to it.",
)
schemas["SettingsResponse"] = obj(
    {"name": string("The organization's name."), "settings": S("OrgSettings")},
    desc="An organization's name and settings.",
)

schemas["AppSettings"] = obj(
    {
        "signing_alg": string("JWS algorithm of the application's tokens.", examples=["RS256"]),
        "refresh_without_offline_access": {"type": "boolean", "description": "Whether refresh tokens are issued without the client asking for `offline_access`."},
        "warning_insecure_allow_no_pkce": {"type": "boolean", "description": "Insecure: PKCE is not required."},
    },
    desc="Per-application settings.",
)
schemas["GrantType"] = {
    "type": "string",
    "enum": ["authorization_code", "refresh_token", "client_credentials"],
}
schemas["Application"] = obj(
    {
        "id": string(),
        "org_id": string(),
        "client_id": string("The OAuth client_id."),
        "name": string(),
        "client_type": {"type": "string", "enum": ["confidential", "public"]},
        "previous_secret_valid_until": nts("Until when the client secret replaced by the last rotation still works; null if none does."),
        "redirect_uris": {"type": "array", "items": {"type": "string"}},
        "post_logout_redirect_uris": {"type": "array", "items": {"type": "string"}},
        "grant_types": {"type": "array", "items": S("GrantType")},
        "cors_origins": {"type": "array", "items": {"type": "string"}},
        "first_party": {"type": "boolean", "description": "Belongs to the organization itself: skips the consent screen and may obtain first-party scopes."},
        "settings": S("AppSettings"),
        "created_at": ts(),
        "updated_at": ts(),
    },
    desc="An application (OAuth client). Secrets are never included.",
)
schemas["CreatedApplication"] = {
    "description": "The application as created, with its client secret: shown this once.",
    "allOf": [
        S("Application"),
        obj(
            {"client_secret": nstring("The client secret of a confidential client (shown only now); null for a public client.")},
        ),
    ],
}
schemas["ApplicationPage"] = page("Application", "The organization's applications.", always_null=True)
schemas["ClientSecretRotation"] = obj(
    {
        "client_id": string(),
        "client_secret": string("The new client secret, shown only now."),
        "previous_secret_valid_until": nts("Until when the old secret still works; null when it stopped working at once."),
    },
    desc="A new client secret.",
)

schemas["SigningKey"] = obj(
    {
        "kid": string("Key id."),
        "org_id": string(),
        "alg": string("JWS algorithm.", examples=["RS256"]),
        "public_jwk": string("The public JWK, as JSON text, exactly as published in the JWKS."),
        "state": {"type": "string", "enum": ["next", "active", "retired"], "description": "`next`: published, not yet signing; `active`: signing; `retired`: published until its tokens expire."},
        "created_at": ts(),
        "activated_at": nts("When the key started signing."),
        "retired_at": nts("When the key stopped signing."),
        "publish_until": nts("Until when a retired key stays published."),
    },
    desc="A token-signing key (public part only).",
)
schemas["SigningKeyList"] = obj(
    {"items": {"type": "array", "items": S("SigningKey")}},
    desc="The organization's signing keys.",
)
schemas["Rotation"] = obj(
    {
        "alg": string(),
        "activated": string("Kid of the key that now signs."),
        "retired": nstring("Kid of the key that stopped signing; null if there was none."),
        "next": string("Kid of the new published successor."),
    },
    desc="One algorithm's rotation.",
)
schemas["SigningKeyRotationResult"] = obj(
    {"rotations": {"type": "array", "items": S("Rotation")}},
    desc="The rotations made, one per algorithm the organization signs with.",
)

schemas["User"] = obj(
    {
        "id": string(),
        "org_id": string(),
        "email": string(),
        "email_verified": {"type": "boolean"},
        "name": nstring("Display name."),
        "session_version": {"type": "integer", "format": "int64", "description": "Bumped to end every session and token of the user at once."},
        "disabled": {"type": "boolean", "description": "A disabled user cannot sign in."},
        "created_at": ts(),
        "updated_at": ts(),
    },
    desc="An end user of the organization.",
)
schemas["UserPage"] = page("User", "A page of users, in email order.")
schemas["Session"] = obj(
    {
        "public_id": string("The session's public id (the `sid` of its ID tokens)."),
        "org_id": string(),
        "user_id": string(),
        "auth_time": ts("When the user signed in."),
        "amr": {"type": "array", "items": {"type": "string"}, "description": "Authentication methods used (`pwd`, `otp`, `hwk`, `mfa`, ...)."},
        "acr": nstring("Authentication context class."),
        "ip": nstring("Client address at sign-in."),
        "user_agent": nstring(),
        "session_version": {"type": "integer", "format": "int64", "description": "The user's session_version at sign-in."},
        "created_at": ts(),
        "last_seen_at": ts(),
        "expires_at": ts(),
        "revoked_at": nts("When the session was signed out."),
        "mfa_at": nts("When a second factor was last proved in this session."),
    },
    desc="A browser session of a user.",
)
schemas["SessionList"] = obj(
    {"items": {"type": "array", "items": S("Session")}},
    desc="The user's live sessions.",
)
schemas["SessionVersion"] = obj(
    {"session_version": {"type": "integer", "format": "int64", "description": "The user's new session_version."}},
)
schemas["FactorsReset"] = obj(
    {"removed": uint("How many second factors were removed.")},
)

schemas["StaffMember"] = obj(
    {
        "staff_id": string(),
        "email": string(),
        "name": nstring(),
        "role": S("Role"),
        "created_at": ts("When they joined the team."),
    },
    desc="A member of the organization's team.",
)
schemas["StaffMemberPage"] = page("StaffMember", "The organization's team.", always_null=True)
schemas["Invitation"] = obj(
    {
        "id": string(),
        "email": string(),
        "role": S("Role"),
        "invited_by": string("Actor id of whoever sent it."),
        "created_at": ts(),
        "expires_at": ts(),
        "expired": {"type": "boolean", "description": "True once the link no longer works."},
    },
    desc="A pending invitation to join the team.",
)
schemas["InvitationPage"] = page("Invitation", "Pending invitations (neither accepted nor revoked; expired ones included).", always_null=True)
schemas["CreatedInvitation"] = obj(
    {"id": string(), "email": string(), "role": S("Role"), "expires_at": ts()},
    desc="The invitation sent. The link goes only to the invited address.",
)

api_key_props = {
    "id": string(),
    "org_id": string(),
    "name": string(),
    "scopes": {"type": "array", "items": {"type": "string"}, "description": "Scope names, sorted."},
    "previous_valid_until": nts("Until when the secret replaced by the last rotation still works."),
    "created_by": string("Actor id of the creator."),
    "created_at": ts(),
    "expires_at": nts("When the key stops working; null if it never expires."),
    "revoked_at": nts("When the key was revoked."),
    "last_used_at": nts("When the key was last used (updated at most once a minute)."),
    "last_used_ip": nstring("Client address of the last use."),
}
schemas["ApiKey"] = obj(api_key_props, desc="An admin API key (never its secret).")
schemas["IssuedApiKey"] = {
    "description": "An API key with its secret: shown this once.",
    "allOf": [
        S("ApiKey"),
        obj({"secret": string("The key: `lk_admin_` followed by 43 base64url characters. Shown only now.", pattern="^lk_admin_")}),
    ],
}
schemas["ApiKeyPage"] = page("ApiKey", "The organization's API keys.", always_null=True)

schemas["AuditEvent"] = obj(
    {
        "org_id": string(),
        "seq": {"type": "integer", "format": "int64", "description": "Position in the organization's hash chain."},
        "at": ts(),
        "actor_type": string("`operator`, `user`, `anonymous`, `client`, `api_key`, `staff` or `system`."),
        "actor_id": nstring(),
        "actor_role": nstring(),
        "ip": nstring(),
        "user_agent": nstring(),
        "action": string("What happened, e.g. `user.created`."),
        "target_type": nstring(),
        "target_id": nstring(),
        "before_state": nstring("JSON text of the state before (secrets redacted)."),
        "after_state": nstring("JSON text of the state after (secrets redacted)."),
        "prev_hash": string("Hash of the preceding event."),
        "hash": string("This event's hash."),
        "chain_version": {"type": "integer", "format": "int64", "description": "How `hash` was computed: 1 (SHA-256) or 2 (keyed HMAC-SHA-256)."},
    },
    desc="An event of the append-only, hash-linked audit log.",
)
schemas["AuditEventPage"] = page("AuditEvent", "A page of audit events, newest first. `next_cursor` is a decimal `seq`.")

# request bodies
schemas["CreateOrgRequest"] = obj(
    {
        "slug": string("2 to 40 characters of a-z, 0-9 and '-', not starting or ending with '-'.", minLength=2, maxLength=40, pattern="^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"),
        "name": name_string("1 to 100 characters, no control characters."),
        "owner_email": string(**EMAIL_RULES, desc="The first Owner: an existing staff account is added at once; anyone else is emailed an Owner invitation."),
    },
    closed=True,
)
schemas["SettingsPatchRequest"] = obj(
    {
        "name": name_string("A new name (1 to 100 characters); absent or null keeps it.", nullable=True),
        "settings": {
            "description": "Settings to change; absent or null keeps them.",
            "oneOf": [S("OrgSettingsPatch"), {"type": "null"}],
        },
    },
    required=[],
    closed=True,
)
schemas["CreateAppRequest"] = obj(
    {
        "name": name_string("1 to 100 characters, no control characters."),
        "client_type": {"type": "string", "enum": ["confidential", "public"], "description": "A confidential client gets a client secret; a public one must use PKCE."},
        "redirect_uris": {"type": "array", "items": {"type": "string"}, "default": [], "description": "Absolute URIs; required with `authorization_code`, refused without it."},
        "post_logout_redirect_uris": {"type": "array", "items": {"type": "string"}, "default": []},
        "grant_types": {"type": "array", "items": S("GrantType"), "default": [], "description": "Empty or absent: `authorization_code` and `refresh_token`. `refresh_token` needs `authorization_code`; public clients cannot use `client_credentials`."},
        "cors_origins": {"type": "array", "items": {"type": "string"}, "default": []},
        "first_party": {"type": "boolean", "default": False},
        "signing_alg": {"type": ["string", "null"], "enum": ["RS256", "ES256", "EdDSA", None], "description": "Token signing algorithm; absent or null: RS256."},
        "require_offline_access": {"type": "boolean", "default": False, "description": "Issue refresh tokens only when the client asks for `offline_access`."},
    },
    required=["name", "client_type"],
    closed=True,
)
schemas["UpdateAppRequest"] = obj(
    {
        "name": name_string("1 to 100 characters; absent or null keeps it.", nullable=True),
        "redirect_uris": {"type": ["array", "null"], "items": {"type": "string"}, "description": "Replaces the list; absent or null keeps it. Checked with the grant types as at creation."},
        "post_logout_redirect_uris": {"type": ["array", "null"], "items": {"type": "string"}, "description": "Replaces the list; absent or null keeps it."},
        "grant_types": {"type": ["array", "null"], "items": S("GrantType"), "minItems": 1, "description": "Replaces the list (at least one); absent or null keeps it."},
        "cors_origins": {"type": ["array", "null"], "items": {"type": "string"}, "description": "Replaces the list; absent or null keeps it."},
        "first_party": {"type": ["boolean", "null"], "description": "Absent or null keeps it."},
        "signing_alg": {"type": ["string", "null"], "enum": ["RS256", "ES256", "EdDSA", None], "description": "Absent or null keeps it."},
        "require_offline_access": {"type": ["boolean", "null"], "description": "Absent or null keeps it."},
    },
    required=[],
    closed=True,
)
schemas["RotateSecretRequest"] = obj(
    {"grace_period_secs": uint("How long the old secret keeps working (0, the default, to 604800 = 7 days).", maximum=604800, default=0)},
    required=[],
    closed=True,
)
schemas["CreateUserRequest"] = obj(
    {
        "email": string(**EMAIL_RULES),
        "password": nstring("Must satisfy the organization's password policy; absent or null: the user has no password."),
        "name": name_string("Display name (1 to 100 characters, no control characters).", nullable=True),
        "email_verified": {"type": "boolean", "default": False},
    },
    required=["email"],
    closed=True,
)
schemas["UpdateUserRequest"] = obj(
    {
        "name": {"type": ["string", "null"], "maxLength": 100, "pattern": f"^[^{CONTROL}]*$", "description": "A new display name (at most 100 characters, no control characters); an empty or blank string clears it; absent or null keeps it."},
        "disabled": {"type": ["boolean", "null"], "description": "Disable or enable the user; absent or null keeps it."},
    },
    required=[],
    closed=True,
)
schemas["RoleChangeRequest"] = obj({"role": S("Role")}, closed=True)
schemas["InviteRequest"] = obj({"email": string(**EMAIL_RULES), "role": S("Role")}, closed=True)
schemas["CreateApiKeyRequest"] = obj(
    {
        "name": name_string("1 to 100 characters, no control characters."),
        "scopes": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "enum": KEY_SCOPES + ["all"]},
            "description": "Scopes the key gets, each one you hold yourself; `all` means every scope you hold that a key can have. `api_keys:write`, `owners:write` and `org:delete` can never be given to a key.",
        },
        "expires_in_days": {"type": ["integer", "null"], "minimum": 1, "maximum": 3650, "description": "Days until the key expires (1 to 3650); absent or null: never."},
    },
    required=["name", "scopes"],
    closed=True,
)
schemas["RotateApiKeyRequest"] = obj(
    {"grace_period_secs": uint("How long the old secret keeps working (0, the default, to 604800 = 7 days).", maximum=604800, default=0)},
    required=[],
    closed=True,
)

# ---------------------------------------------------------------- responses

def problem_response(desc, headers=None):
    r = {"description": desc, "content": {"application/problem+json": {"schema": S("Problem")}}}
    if headers:
        r["headers"] = headers
    return r


responses = {
    "BadRequest": problem_response(
        "Bad input: an invalid field (named in `field`), malformed JSON or query parameters, an unknown query parameter where a list refuses them, a malformed `Idempotency-Key`, or credentials sent in the query string."
    ),
    "Unauthorized": problem_response(
        "No credentials, or invalid ones: a missing, malformed, invalid, expired or revoked API key, or no live staff session.",
        headers={
            "WWW-Authenticate": {
                "description": "`Bearer realm=\"latchkey-admin\"`, with `error=\"invalid_token\"` for a refused API key.",
                "required": True,
                "schema": {"type": "string"},
            }
        },
    ),
    "Forbidden": problem_response(
        "Refused: the caller's role or the API key's scopes do not allow this; a staff session needs a fresh second-factor proof (`type` is `urn:latchkey:problem:step-up-required`); a change made with a staff session lacks the same-origin check or the right `X-CSRF-Token`; or a staff member has not enrolled a second factor."
    ),
    "NotFound": problem_response(
        "No such organization or resource. An organization the caller has no access to is answered the same way."
    ),
    "Conflict": problem_response("The request conflicts with the current state, or (for a POST) a request with the same `Idempotency-Key` is still running."),
    "UnprocessableEntity": problem_response("The `Idempotency-Key` was already used for a different request."),
    "PayloadTooLarge": problem_response("The request body is larger than the server accepts."),
    "ServiceUnavailable": problem_response(
        "Busy or temporarily unavailable; retry shortly.",
        headers={
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer"},
            }
        },
    ),
}

headers = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer of an earlier request with the same `Idempotency-Key`.",
        "schema": {"type": "string", "const": "true"},
    },
    "Cache-Control": {
        "description": "Always `no-store`: answers may hold a secret shown once.",
        "schema": {"type": "string", "const": "no-store"},
    }
}


def ok_json(schema, desc, status="200"):
    return {
        status: {
            "description": desc,
            "headers": {"Cache-Control": ref("headers", "Cache-Control")},
            "content": {"application/json": {"schema": S(schema)}},
        }
    }


def no_content(desc):
    return {"204": {"description": desc}}


# ---------------------------------------------------------------- parameters

parameters = {
    "org": {
        "name": "org",
        "in": "path",
        "required": True,
        "description": "The organization's slug.",
        "schema": {"type": "string"},
    },
    "client_id": {
        "name": "client_id",
        "in": "path",
        "required": True,
        "description": "The application's client_id.",
        "schema": {"type": "string"},
    },
    "user_id": {
        "name": "user_id",
        "in": "path",
        "required": True,
        "description": "The user's id.",
        "schema": {"type": "string"},
    },
    "staff_id": {
        "name": "staff_id",
        "in": "path",
        "required": True,
        "description": "The team member's staff id.",
        "schema": {"type": "string"},
    },
    "invitation_id": {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The invitation's id.",
        "schema": {"type": "string"},
    },
    "api_key_id": {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The API key's id.",
        "schema": {"type": "string"},
    },
    "csrf": {
        "name": "X-CSRF-Token",
        "in": "header",
        "required": False,
        "description": "Required for a change made with a staff session (the `csrf_token` of `GET /api/v1/me`); the request must also come from this origin. Not used with an API key.",
        "schema": {"type": "string"},
    },
    "idempotency_key": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Makes a POST safe to retry: a retry with the same key and the same body gets the first successful answer again (with `Idempotent-Replayed: true`) instead of acting twice; the same key with a different body is refused (422); while the first request runs, a retry answers 409. A failed request frees the key. Keys are per caller and path and kept for a day. 1 to 255 visible ASCII characters.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    },
    "cursor": {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "The `next_cursor` of the previous page.",
        "schema": {"type": "string"},
    },
    "limit": {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "Page size, 1 to 200 (default 50).",
        "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": 200, "default": 50},
    },
    "email_prefix": {
        "name": "email_prefix",
        "in": "query",
        "required": False,
        "description": "Only users whose email starts with this (case-insensitive, at most 254 characters).",
        "schema": {"type": "string", "maxLength": 254},
    },
    "audit_cursor": {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "The `next_cursor` of the previous page: events with a lower `seq` follow.",
        "schema": {"type": "integer", "format": "int64"},
    },
    "export_cursor": {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "Export only events with a `seq` above this (default 0: from the start).",
        "schema": {"type": "integer", "format": "int64"},
    },
    "action": {
        "name": "action",
        "in": "query",
        "required": False,
        "description": "Only events of this action.",
        "schema": {"type": "string", "enum": ACTIONS},
    },
    "actor": {
        "name": "actor",
        "in": "query",
        "required": False,
        "description": "Only events by this actor id (a user or staff id, an API key id, `cli:<name>`, ...).",
        "schema": {"type": "string"},
    },
    "user": {
        "name": "user",
        "in": "query",
        "required": False,
        "description": "Only events about or by this user id.",
        "schema": {"type": "string"},
    },
    "since": {
        "name": "since",
        "in": "query",
        "required": False,
        "description": "Only events at or after this Unix time (seconds); after `until`, the page is empty.",
        "schema": {"type": "integer", "format": "int64"},
    },
    "until": {
        "name": "until",
        "in": "query",
        "required": False,
        "description": "Only events before this Unix time (seconds).",
        "schema": {"type": "integer", "format": "int64"},
    },
}


def P(name):
    return ref("parameters", name)


# ---------------------------------------------------------------- operations

SECURITY = [{"apiKey": []}, {"staffSession": []}]
MUTATING = {"post", "patch", "delete", "put"}


def scope_text(scope, step_up=False):
    who = {
        "org:read": "any role",
        "owners:write": "Owner",
        "org:delete": "Owner",
    }.get(scope, "Owner or Team Admin")
    text = f"Requires `{scope}` ({who})."
    if step_up:
        text += " A staff session must have proved a second factor within the step-up window (the shorter of this organization's and the staff organization's `mfa.step_up_minutes`)."
    return text


def op(method, op_id, summary, tags, description, success, *, params=(), body=None,
       errors=("400", "401", "403", "404", "503"), security=True):
    o = {
        "operationId": op_id,
        "summary": summary,
        "description": description,
        "tags": tags,
    }
    ps = list(params)
    if method in MUTATING and security:
        ps.append(P("csrf"))
    if method == "post" and security:
        ps.append(P("idempotency_key"))
    if ps:
        o["parameters"] = ps
    if body:
        o["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": S(body)}},
        }
    resp = dict(success)
    names = {
        "400": "BadRequest",
        "401": "Unauthorized",
        "403": "Forbidden",
        "404": "NotFound",
        "409": "Conflict",
        "422": "UnprocessableEntity",
        "413": "PayloadTooLarge",
        "503": "ServiceUnavailable",
    }
    errs = list(errors)
    if body and "413" not in errs:
        errs.append("413")
    if method == "post" and security:
        errs += [c for c in ("409", "422") if c not in errs]
        for code, r in resp.items():
            if code.startswith("2"):
                r = dict(r)
                r["headers"] = {**r.get("headers", {}), "Idempotent-Replayed": ref("headers", "Idempotent-Replayed")}
                resp[code] = r
    for code in sorted(errs):
        resp[code] = ref("responses", names[code])
    o["responses"] = resp
    o["security"] = SECURITY if security else []
    return o


TOP = ("400", "401", "403", "503")
ORG = ("400", "401", "403", "404", "503")
ORGC = ("400", "401", "403", "404", "409", "503")

paths = {}


def add(path, method, operation, path_params=()):
    item = paths.setdefault(path, {})
    if path_params and "parameters" not in item:
        item["parameters"] = [P(p) for p in path_params]
    item[method] = operation


ORG_P = ("org",)
APP_P = ("org", "client_id")
USER_P = ("org", "user_id")

add("/api/v1/openapi.json", "get", op(
    "get", "getOpenApiDocument", "This document", ["Meta"],
    "The OpenAPI 3.1 description of the admin API. No authentication needed.",
    {"200": {"description": "The OpenAPI document.", "content": {"application/json": {"schema": {"type": "object"}}}}},
    errors=(), security=False))

add("/api/v1/me", "get", op(
    "get", "getMe", "Who am I", ["Meta"],
    "The caller: a staff member (with the CSRF token their session's changes must carry, and their organizations) or an API key (with its scopes).",
    ok_json("Me", "The caller."), errors=TOP))

add("/api/v1/orgs", "get", op(
    "get", "listOrgs", "List organizations", ["Organizations"],
    "The organizations the caller can see, in slug order: all of them for a platform operator, their memberships for other staff, its own for an API key. The staff organization is never listed. Unknown query parameters are refused.",
    ok_json("OrgSummaryPage", "A page of organizations."), params=[P("cursor"), P("limit")], errors=TOP))
add("/api/v1/orgs", "post", op(
    "post", "createOrg", "Create an organization", ["Organizations"],
    "Platform operators only (staff session). Creates the organization with its signing keys and names its first Owner: an existing staff account becomes Owner at once; anyone else is emailed an Owner invitation.",
    ok_json("CreatedOrg", "The organization was created.", "201"), body="CreateOrgRequest",
    errors=("400", "401", "403", "409", "503")))

add("/api/v1/orgs/{org}", "get", op(
    "get", "getOrg", "Get an organization", ["Organizations"],
    "The organization and the caller's role and scopes there. " + scope_text("org:read"),
    ok_json("OrgDetails", "The organization."), errors=ORG), ORG_P)
add("/api/v1/orgs/{org}", "delete", op(
    "delete", "deleteOrg", "Delete an organization", ["Organizations"],
    "Deletes the organization with everything it owns; its audit log is kept. The staff organization cannot be deleted (409). " + scope_text("org:delete", True),
    no_content("The organization was deleted."), errors=ORGC), ORG_P)

add("/api/v1/orgs/{org}/settings", "get", op(
    "get", "getOrgSettings", "Get settings", ["Organizations"],
    "The organization's name and settings. " + scope_text("org:read"),
    ok_json("SettingsResponse", "The name and settings."), errors=ORG), ORG_P)
add("/api/v1/orgs/{org}/settings", "patch", op(
    "patch", "updateOrgSettings", "Change settings", ["Organizations"],
    "Renames the organization and/or changes settings. `settings` is merged into the current settings; the result is checked as a whole (400 naming the setting at fault). " + scope_text("settings:write"),
    ok_json("SettingsResponse", "The name and settings as changed."), body="SettingsPatchRequest", errors=ORG), ORG_P)

add("/api/v1/orgs/{org}/apps", "get", op(
    "get", "listApps", "List applications", ["Applications"],
    "Every application of the organization (secrets are never shown). " + scope_text("org:read"),
    ok_json("ApplicationPage", "The applications."), errors=ORG), ORG_P)
add("/api/v1/orgs/{org}/apps", "post", op(
    "post", "createApp", "Create an application", ["Applications"],
    "Registers an OAuth client. A confidential client's secret is in the answer, and only there. " + scope_text("apps:write"),
    ok_json("CreatedApplication", "The application was created.", "201"), body="CreateAppRequest", errors=ORGC), ORG_P)

add("/api/v1/orgs/{org}/apps/{client_id}", "get", op(
    "get", "getApp", "Get an application", ["Applications"],
    scope_text("org:read"),
    ok_json("Application", "The application."), errors=ORG), APP_P)
add("/api/v1/orgs/{org}/apps/{client_id}", "patch", op(
    "patch", "updateApp", "Change an application", ["Applications"],
    "Changes the application's name, redirect URIs, grant types, CORS origins, signing algorithm, refresh policy or first-party flag, under the same rules as at creation; its type and client id never change. Refused changes change nothing. " + scope_text("apps:write"),
    ok_json("Application", "The application as changed."), body="UpdateAppRequest", errors=ORG), APP_P)
add("/api/v1/orgs/{org}/apps/{client_id}", "delete", op(
    "delete", "deleteApp", "Delete an application", ["Applications"],
    scope_text("apps:write"),
    no_content("The application was deleted."), errors=ORG), APP_P)

add("/api/v1/orgs/{org}/apps/{client_id}/rotate-secret", "post", op(
    "post", "rotateClientSecret", "Rotate a client secret", ["Applications"],
    "Gives a confidential application a new client secret, shown only in the answer. The old secret keeps working for `grace_period_secs`. A public client has no secret (400). Send `{}` for no grace period. " + scope_text("apps:write", True),
    ok_json("ClientSecretRotation", "The new secret."), body="RotateSecretRequest", errors=ORG), APP_P)

add("/api/v1/orgs/{org}/signing-keys", "get", op(
    "get", "listSigningKeys", "List signing keys", ["Signing keys"],
    "The organization's token-signing keys (public parts only). " + scope_text("org:read"),
    ok_json("SigningKeyList", "The signing keys."), errors=ORG), ORG_P)
add("/api/v1/orgs/{org}/signing-keys/rotate", "post", op(
    "post", "rotateSigningKeys", "Rotate signing keys", ["Signing keys"],
    "For every algorithm the organization signs with: the published next key starts signing, the active one is retired (published until its tokens expire) and a new next key is published. No request body. A concurrent rotation is refused (409). " + scope_text("signing_keys:write"),
    ok_json("SigningKeyRotationResult", "The rotations made."), errors=ORGC), ORG_P)

add("/api/v1/orgs/{org}/users", "get", op(
    "get", "listUsers", "List users", ["Users"],
    "The organization's users in email order, optionally only those whose email starts with a prefix. Unknown query parameters are refused. " + scope_text("org:read"),
    ok_json("UserPage", "A page of users."), params=[P("cursor"), P("limit"), P("email_prefix")], errors=ORG), ORG_P)
add("/api/v1/orgs/{org}/users", "post", op(
    "post", "createUser", "Create a user", ["Users"],
    "Creates an end user. An email address already in use is refused (409). " + scope_text("users:write"),
    ok_json("User", "The user was created.", "201"), body="CreateUserRequest", errors=ORGC), ORG_P)

add("/api/v1/orgs/{org}/users/{user_id}", "get", op(
    "get", "getUser", "Get a user", ["Users"],
    scope_text("org:read"),
    ok_json("User", "The user."), errors=ORG), USER_P)
add("/api/v1/orgs/{org}/users/{user_id}", "patch", op(
    "patch", "updateUser", "Change a user", ["Users"],
    "Renames, disables or enables a user. " + scope_text("users:write"),
    ok_json("User", "The user as changed."), body="UpdateUserRequest", errors=ORG), USER_P)
add("/api/v1/orgs/{org}/users/{user_id}", "delete", op(
    "delete", "deleteUser", "Delete a user", ["Users"],
    "Deletes the user with their credentials, sessions, grants and consents. " + scope_text("users:write", True),
    no_content("The user was deleted."), errors=ORG), USER_P)

add("/api/v1/orgs/{org}/users/{user_id}/sessions", "get", op(
    "get", "listUserSessions", "List a user's sessions", ["Users"],
    "The user's live sessions. " + scope_text("org:read"),
    ok_json("SessionList", "The sessions."), errors=ORG), USER_P)
add("/api/v1/orgs/{org}/users/{user_id}/sessions", "delete", op(
    "delete", "signOutUser", "Sign a user out everywhere", ["Users"],
    "Ends every session and token of the user (bumps their session_version). " + scope_text("users:write"),
    no_content("The user was signed out everywhere."), errors=ORG), USER_P)
add("/api/v1/orgs/{org}/users/{user_id}/session-version", "post", op(
    "post", "bumpSessionVersion", "Bump a user's session version", ["Users"],
    "Like signing the user out everywhere, and returns the new session_version. No request body. " + scope_text("users:write"),
    ok_json("SessionVersion", "The new session version."), errors=ORG), USER_P)
add("/api/v1/orgs/{org}/users/{user_id}/reset-factors", "post", op(
    "post", "resetUserFactors", "Reset a user's second factors", ["Users"],
    "Removes every second factor of the user (TOTP, passkeys, email codes, recovery codes); the password stays. If any were removed, the user's sessions end too. No request body. " + scope_text("users:write"),
    ok_json("FactorsReset", "How many factors were removed."), errors=ORG), USER_P)

add("/api/v1/orgs/{org}/members", "get", op(
    "get", "listMembers", "List the team", ["Team"],
    "The staff members of the organization and their roles. " + scope_text("org:read"),
    ok_json("StaffMemberPage", "The team."), errors=ORG), ORG_P)
add("/api/v1/orgs/{org}/members/{staff_id}", "patch", op(
    "patch", "changeMemberRole", "Change a member's role", ["Team"],
    "Making a Member a Team Admin needs `members:write`; changing an Owner's or Team Admin's role, or naming an Owner, also needs `owners:write` (Owners only). The last Owner cannot be demoted (409). " + scope_text("members:write", True),
    ok_json("StaffMember", "The member with the new role."), body="RoleChangeRequest", errors=ORGC), ("org", "staff_id"))
add("/api/v1/orgs/{org}/members/{staff_id}", "delete", op(
    "delete", "removeMember", "Remove a member", ["Team"],
    "Removes the member from the team (their staff account stays). Removing an Owner or Team Admin also needs `owners:write` (Owners only). The last Owner cannot be removed (409). An Owner's staff session needs a recent second-factor proof for any removal. " + scope_text("members:write"),
    no_content("The member was removed."), errors=ORGC), ("org", "staff_id"))

add("/api/v1/orgs/{org}/invitations", "get", op(
    "get", "listInvitations", "List invitations", ["Team"],
    "Pending invitations, expired ones included. " + scope_text("org:read"),
    ok_json("InvitationPage", "The invitations."), errors=ORG), ORG_P)
add("/api/v1/orgs/{org}/invitations", "post", op(
    "post", "createInvitation", "Invite to the team", ["Team"],
    "Emails a single-use link, valid 7 days, to join the team with a role. Inviting an Owner or Team Admin also needs `owners:write` (Owners only). An Owner's staff session needs a recent second-factor proof for any invitation. " + scope_text("members:write"),
    ok_json("CreatedInvitation", "The invitation was sent.", "201"), body="InviteRequest", errors=ORG), ORG_P)
add("/api/v1/orgs/{org}/invitations/{id}", "delete", op(
    "delete", "revokeInvitation", "Revoke an invitation", ["Team"],
    "Revokes a pending invitation; one already accepted or revoked is not found. " + scope_text("members:write"),
    no_content("The invitation was revoked."), errors=ORG), ("org", "invitation_id"))

add("/api/v1/orgs/{org}/api-keys", "get", op(
    "get", "listApiKeys", "List API keys", ["API keys"],
    "The organization's admin API keys (never their secrets). " + scope_text("org:read"),
    ok_json("ApiKeyPage", "The API keys."), errors=ORG), ORG_P)
add("/api/v1/orgs/{org}/api-keys", "post", op(
    "post", "createApiKey", "Create an API key", ["API keys"],
    "Staff sessions only: API keys cannot create keys (403). The key's scopes must be among your own; its secret is in the answer, and only there. " + scope_text("api_keys:write", True),
    ok_json("IssuedApiKey", "The key was created.", "201"), body="CreateApiKeyRequest", errors=ORG), ORG_P)
add("/api/v1/orgs/{org}/api-keys/{id}/rotate", "post", op(
    "post", "rotateApiKey", "Rotate an API key", ["API keys"],
    "Staff sessions only. Gives a live key a new secret, shown only in the answer; the old one keeps working for `grace_period_secs`. You must hold every scope of the key (403 otherwise). A revoked or expired key cannot be rotated (409). Send `{}` for no grace period. " + scope_text("api_keys:write"),
    ok_json("IssuedApiKey", "The key with its new secret."), body="RotateApiKeyRequest", errors=ORGC), ("org", "api_key_id"))
add("/api/v1/orgs/{org}/api-keys/{id}", "delete", op(
    "delete", "revokeApiKey", "Revoke an API key", ["API keys"],
    "Staff sessions only. The key (and any previous secret in its grace period) stops working at once. Revoking a revoked key succeeds. " + scope_text("api_keys:write"),
    no_content("The key is revoked."), errors=ORG), ("org", "api_key_id"))

AUDIT_FILTERS = [P("action"), P("actor"), P("user"), P("since"), P("until")]
add("/api/v1/orgs/{org}/audit-events", "get", op(
    "get", "listAuditEvents", "List audit events", ["Audit log"],
    "Matching audit events, newest first. Reading is itself recorded (`audit.read`). Unknown query parameters are refused. " + scope_text("audit:read"),
    ok_json("AuditEventPage", "A page of events."), params=[P("audit_cursor"), P("limit")] + AUDIT_FILTERS, errors=ORG), ORG_P)
add("/api/v1/orgs/{org}/audit-events/export", "get", op(
    "get", "exportAuditEvents", "Export audit events", ["Audit log"],
    "Matching events as NDJSON (one AuditEvent JSON object per line), oldest first, up to the newest event when the export started. The export is itself recorded (`audit.exported`). Unknown query parameters (`limit` too: the export has no pages) are refused. " + scope_text("audit:read", True),
    {"200": {
        "description": "The events, one JSON object per line (see the AuditEvent schema). If the export fails midway the stream ends early.",
        "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
    }},
    params=[P("export_cursor")] + AUDIT_FILTERS, errors=ORG), ORG_P)

doc = {
    "openapi": "3.1.0",
    "info": {
        "title": "Latchkey admin API",
        "version": "1",
        "description": (
            "Administer Latchkey organizations: applications, signing keys, users, the team, API keys and "
            "the audit log. Requests and answers are JSON; errors are RFC 9457 problem documents "
            "(`application/problem+json`).\n\n"
            "Authenticate with an admin API key (`Authorization: Bearer lk_admin_...`) or a staff session "
            "cookie. With a staff session, every change (POST, PATCH, DELETE) must come from this origin and "
            "carry the session's CSRF token (`csrf_token` from `GET /api/v1/me`) in `X-CSRF-Token`. "
            "Credentials in the query string are refused. Any POST may carry an `Idempotency-Key` header to make retries safe.\n\n"
            "Lists are paged with `cursor` and `limit` where noted; follow `next_cursor` until it is null. "
            "Timestamps are Unix seconds. An organization the caller cannot access answers 404, like one that "
            "does not exist."
        ),
    },
    "tags": [
        {"name": "Meta", "description": "This document and the caller's identity."},
        {"name": "Organizations", "description": "Organizations and their settings."},
        {"name": "Applications", "description": "OAuth clients and their secrets."},
        {"name": "Signing keys", "description": "Token-signing keys."},
        {"name": "Users", "description": "End users, their sessions and second factors."},
        {"name": "Team", "description": "Staff members, roles and invitations."},
        {"name": "API keys", "description": "Admin API keys (managed from a staff session)."},
        {"name": "Audit log", "description": "The append-only, hash-linked audit log."},
    ],
    "security": SECURITY,
    "paths": paths,
    "components": {
        "securitySchemes": {
            "apiKey": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "lk_admin_",
                "description": "An admin API key of one organization: `Authorization: Bearer lk_admin_` followed by 43 base64url characters. Its scopes decide what it may do; it can never manage API keys, change Owners or Team Admins, or delete the organization.",
            },
            "staffSession": {
                "type": "apiKey",
                "in": "cookie",
                "name": "latchkey-staff",
                "description": "A staff session from signing in to the staff pages with a second factor (over HTTPS the cookie is `__Host-latchkey-staff`). Used only when no Authorization header is sent. Changes need the `X-CSRF-Token` header (the `csrf_token` of `GET /api/v1/me`) and a same-origin request.",
            },
        },
        "parameters": parameters,
        "headers": headers,
        "responses": responses,
        "schemas": schemas,
    },
}

with open(OUT, "w") as f:
    json.dump(doc, f, indent=2, ensure_ascii=False)
    f.write("\n")
print("paths", len(paths), "operations", sum(len([k for k in v if k != "parameters"]) for v in paths.values()))
