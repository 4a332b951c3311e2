//! Table definitions, written by hand: the custom column types in `sql_types` are what let one
//! schema serve both backends.

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::*;

    workspaces (id) {
        id -> SqlUuid,
        name -> Text,
        role -> Nullable<Text>,
        tier -> Integer,
        status -> Text,
        source_bundle_id -> Nullable<Text>,
        agent_card -> Nullable<SqlJson>,
        url -> Nullable<Text>,
        parent_id -> Nullable<SqlUuid>,
        forwarded_to -> Nullable<SqlUuid>,
        last_heartbeat_at -> Nullable<SqlTimestamp>,
        last_error_rate -> Double,
        last_sample_error -> Nullable<Text>,
        active_tasks -> Integer,
        uptime_seconds -> BigInt,
        current_task -> Nullable<Text>,
        runtime -> Nullable<Text>,
        model -> Nullable<Text>,
        created_at -> SqlTimestamp,
        updated_at -> SqlTimestamp,
        version -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::*;

    agents (id) {
        id -> SqlUuid,
        workspace_id -> SqlUuid,
        model -> Nullable<Text>,
        status -> Text,
        removed_at -> Nullable<SqlTimestamp>,
        removal_reason -> Nullable<Text>,
        created_at -> SqlTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::*;

    workspace_secrets (id) {
        id -> SqlUuid,
        workspace_id -> SqlUuid,
        key -> Text,
        encrypted_value -> Binary,
        wrapped_key -> Binary,
        key_id -> Text,
        created_at -> SqlTimestamp,
        updated_at -> SqlTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::*;

    global_secrets (id) {
        id -> SqlUuid,
        key -> Text,
        encrypted_value -> Binary,
        wrapped_key -> Binary,
        key_id -> Text,
        created_at -> SqlTimestamp,
        updated_at -> SqlTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::*;

    canvas_layouts (workspace_id) {
        workspace_id -> SqlUuid,
        x -> Double,
        y -> Double,
        collapsed -> Bool,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::*;

    canvas_viewport (id) {
        id -> Integer,
        x -> Double,
        y -> Double,
        zoom -> Double,
        saved_at -> SqlTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::*;

    structure_events (id) {
        id -> SqlUuid,
        seq -> BigInt,
        event_type -> Text,
        workspace_id -> Nullable<SqlUuid>,
        agent_id -> Nullable<SqlUuid>,
        target_id -> Nullable<SqlUuid>,
        payload -> SqlJson,
        created_at -> SqlTimestamp,
        actor -> Nullable<SqlJson>,
        actor_id -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::*;

    activity_logs (id) {
        id -> SqlUuid,
        workspace_id -> SqlUuid,
        activity_type -> Text,
        source_id -> Nullable<SqlUuid>,
        target_id -> Nullable<SqlUuid>,
        method -> Nullable<Text>,
        summary -> Nullable<Text>,
        request_body -> Nullable<SqlJson>,
        response_body -> Nullable<SqlJson>,
        metadata -> Nullable<SqlJson>,
        duration_ms -> Nullable<Integer>,
        status -> Text,
        error_detail -> Nullable<Text>,
        created_at -> SqlTimestamp,
        actor -> Nullable<SqlJson>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::*;

    workspace_auth_tokens (id) {
        id -> SqlUuid,
        workspace_id -> SqlUuid,
        token_hash -> Text,
        token_prefix -> Text,
        created_at -> SqlTimestamp,
        last_used_at -> Nullable<SqlTimestamp>,
        revoked_at -> Nullable<SqlTimestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::*;

    live_events (seq) {
        seq -> BigInt,
        id -> SqlUuid,
        event_type -> Text,
        workspace_id -> Nullable<SqlUuid>,
        payload -> SqlJson,
        created_at -> SqlTimestamp,
        actor -> Nullable<SqlJson>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::*;

    leader_leases (name) {
        name -> Text,
        holder -> Text,
        fencing_token -> BigInt,
        expires_at -> SqlTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;

    stream_meta (id) {
        id -> Integer,
        epoch -> Text,
        last_seq -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::*;

    approval_requests (id) {
        id -> SqlUuid,
        workspace_id -> SqlUuid,
        task_id -> Nullable<Text>,
        action -> Text,
        reason -> Nullable<Text>,
        context -> SqlJson,
        status -> Text,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<SqlTimestamp>,
        created_at -> SqlTimestamp,
        expires_at -> SqlTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::*;

    api_keys (id) {
        id -> SqlUuid,
        name -> Text,
        role -> Text,
        key_hash -> Text,
        key_prefix -> Text,
        created_by -> Text,
        created_at -> SqlTimestamp,
        expires_at -> Nullable<SqlTimestamp>,
        last_used_at -> Nullable<SqlTimestamp>,
        revoked_at -> Nullable<SqlTimestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::*;

    sessions (id_hash) {
        id_hash -> Text,
        key_id -> SqlUuid,
        created_at -> SqlTimestamp,
        expires_at -> SqlTimestamp,
        revoked -> Bool,
    }
}

diesel::joinable!(sessions -> api_keys (key_id));
diesel::joinable!(canvas_layouts -> workspaces (workspace_id));
diesel::joinable!(agents -> workspaces (workspace_id));
diesel::joinable!(activity_logs -> workspaces (workspace_id));
diesel::joinable!(workspace_secrets -> workspaces (workspace_id));
diesel::joinable!(workspace_auth_tokens -> workspaces (workspace_id));
diesel::joinable!(approval_requests -> workspaces (workspace_id));

diesel::allow_tables_to_appear_in_same_query!(
    workspaces,
    agents,
    workspace_secrets,
    global_secrets,
    canvas_layouts,
    canvas_viewport,
    structure_events,
    activity_logs,
    workspace_auth_tokens,
    live_events,
    leader_leases,
    stream_meta,
    approval_requests,
    api_keys,
    sessions,
);

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::*;

    idempotency_keys (scope, key) {
        scope -> Text,
        key -> Text,
        fingerprint -> Text,
        response_status -> Nullable<Integer>,
        response_headers -> Nullable<SqlJson>,
        response_body -> Nullable<Binary>,
        created_at -> SqlTimestamp,
    }
}
