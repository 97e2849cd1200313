//! Request bodies in the Kubernetes protobuf encoding. kubectl's typed commands send them (`create
//! namespace|configmap|secret|serviceaccount|role|rolebinding|clusterrole|clusterrolebinding|deployment|job|
//! cronjob`, `create token`, `auth can-i`, `auth whoami`). The envelope (`k8s\0` + `runtime.Unknown`) and
//! the messages of those kinds (field numbers from k8s.io/api `generated.proto`) are decoded into the JSON
//! the handlers already take, with JSON's `omitempty` view of zero values. A field this table does not
//! know fails the decode (the router answers 415) rather than being dropped.

use serde_json::{Map, Value, json};

/// A decoded wire field.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// A fixed32/fixed64 value (no field of the decoded kinds has one: kept so that an unknown
    /// field of that type fails the decode like any other).
    Fixed,
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

/// The fields of one message, in order.
fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (num, wire) = (key >> 3, key & 7);
        match wire {
            0 => out.push((num, Field::Varint(varint(buf, &mut pos)?))),
            2 => {
                let len =
                    usize::try_from(varint(buf, &mut pos)?).map_err(|_| "length too large")?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or("truncated field")?;
                out.push((num, Field::Bytes(&buf[pos..end])));
                pos = end;
            }
            1 | 5 => {
                let width = if wire == 1 { 8 } else { 4 };
                pos = pos
                    .checked_add(width)
                    .filter(|e| *e <= buf.len())
                    .ok_or("truncated field")?;
                out.push((num, Field::Fixed));
            }
            w => return Err(format!("unsupported wire type {w}")),
        }
    }
    Ok(out)
}

/// How one field is read.
#[derive(Clone, Copy)]
enum Ty {
    /// A value-typed string: `""` is left out, as JSON's `omitempty`.
    Str,
    /// A `*string`: kept even when empty.
    StrPtr,
    /// An int32/int64 value: 0 is left out.
    Int,
    /// A `*int32`/`*int64`: 0 is kept.
    IntPtr,
    /// A bool value: false is left out.
    Bool,
    /// A `*bool`: false is kept.
    BoolPtr,
    /// `resource.Quantity` (message `{string = 1}`) as its string.
    Quantity,
    /// `intstr.IntOrString` (`{type = 1, intVal = 2, strVal = 3}`) as a number or a string.
    IntOrString,
    /// A nested message.
    Nested(&'static Msg),
    /// An embedded struct (`json:",inline"`): its fields go into the parent object.
    Inline(&'static Msg),
    /// `map<string, string>`.
    MapStr,
    /// `map<string, bytes>`, as base64 strings.
    MapBytes,
    /// `map<string, Quantity>`.
    MapQuantity,
    /// Known but not taken on create (status, timestamps, managedFields, selfLink, uid): ignored.
    Skip,
}

/// One field: number, JSON name, type, repeated.
struct F(u64, &'static str, Ty, bool);

/// One message: its name (for errors) and fields.
struct Msg {
    name: &'static str,
    fields: &'static [F],
}

use Ty::*;

const R: bool = true;
const O: bool = false;

static OBJECT_META: Msg = Msg {
    name: "ObjectMeta",
    fields: &[
        F(1, "name", Str, O),
        F(2, "generateName", Str, O),
        F(3, "namespace", Str, O),
        F(4, "selfLink", Skip, O),
        F(5, "uid", Skip, O),
        F(6, "resourceVersion", Str, O),
        F(7, "generation", Skip, O),
        F(8, "creationTimestamp", Skip, O),
        F(9, "deletionTimestamp", Skip, O),
        F(10, "deletionGracePeriodSeconds", Skip, O),
        F(11, "labels", MapStr, O),
        F(12, "annotations", MapStr, O),
        F(13, "ownerReferences", Nested(&OWNER_REFERENCE), R),
        F(14, "finalizers", Str, R),
        F(17, "managedFields", Skip, R),
    ],
};
static OWNER_REFERENCE: Msg = Msg {
    name: "OwnerReference",
    fields: &[
        F(1, "kind", Str, O),
        F(3, "name", Str, O),
        F(4, "uid", Str, O),
        F(5, "apiVersion", Str, O),
        F(6, "controller", BoolPtr, O),
        F(7, "blockOwnerDeletion", BoolPtr, O),
    ],
};
static LABEL_SELECTOR: Msg = Msg {
    name: "LabelSelector",
    fields: &[
        F(1, "matchLabels", MapStr, O),
        F(
            2,
            "matchExpressions",
            Nested(&LABEL_SELECTOR_REQUIREMENT),
            R,
        ),
    ],
};
static LABEL_SELECTOR_REQUIREMENT: Msg = Msg {
    name: "LabelSelectorRequirement",
    fields: &[
        F(1, "key", Str, O),
        F(2, "operator", Str, O),
        F(3, "values", Str, R),
    ],
};

// core/v1
static NAMESPACE: Msg = Msg {
    name: "Namespace",
    fields: &[
        F(1, "metadata", Nested(&OBJECT_META), O),
        F(2, "spec", Nested(&NAMESPACE_SPEC), O),
        F(3, "status", Skip, O),
    ],
};
static NAMESPACE_SPEC: Msg = Msg {
    name: "NamespaceSpec",
    fields: &[F(1, "finalizers", Str, R)],
};
static CONFIG_MAP: Msg = Msg {
    name: "ConfigMap",
    fields: &[
        F(1, "metadata", Nested(&OBJECT_META), O),
        F(2, "data", MapStr, O),
        F(3, "binaryData", MapBytes, O),
        F(4, "immutable", BoolPtr, O),
    ],
};
static SECRET: Msg = Msg {
    name: "Secret",
    fields: &[
        F(1, "metadata", Nested(&OBJECT_META), O),
        F(2, "data", MapBytes, O),
        F(3, "type", Str, O),
        F(4, "stringData", MapStr, O),
        F(5, "immutable", BoolPtr, O),
    ],
};
static SERVICE_ACCOUNT: Msg = Msg {
    name: "ServiceAccount",
    fields: &[
        F(1, "metadata", Nested(&OBJECT_META), O),
        F(2, "secrets", Nested(&OBJECT_REFERENCE), R),
        F(3, "imagePullSecrets", Nested(&LOCAL_OBJECT_REFERENCE), R),
        F(4, "automountServiceAccountToken", BoolPtr, O),
    ],
};
static OBJECT_REFERENCE: Msg = Msg {
    name: "ObjectReference",
    fields: &[
        F(1, "kind", Str, O),
        F(2, "namespace", Str, O),
        F(3, "name", Str, O),
        F(4, "uid", Str, O),
        F(5, "apiVersion", Str, O),
        F(6, "resourceVersion", Str, O),
        F(7, "fieldPath", Str, O),
    ],
};
static LOCAL_OBJECT_REFERENCE: Msg = Msg {
    name: "LocalObjectReference",
    fields: &[F(1, "name", Str, O)],
};
static POD: Msg = Msg {
    name: "Pod",
    fields: &[
        F(1, "metadata", Nested(&OBJECT_META), O),
        F(2, "spec", Nested(&POD_SPEC), O),
        F(3, "status", Skip, O),
    ],
};
static POD_TEMPLATE_SPEC: Msg = Msg {
    name: "PodTemplateSpec",
    fields: &[
        F(1, "metadata", Nested(&OBJECT_META), O),
        F(2, "spec", Nested(&POD_SPEC), O),
    ],
};
static POD_SPEC: Msg = Msg {
    name: "PodSpec",
    fields: &[
        F(1, "volumes", Nested(&VOLUME), R),
        F(2, "containers", Nested(&CONTAINER), R),
        F(3, "restartPolicy", Str, O),
        F(4, "terminationGracePeriodSeconds", IntPtr, O),
        F(5, "activeDeadlineSeconds", IntPtr, O),
        F(6, "dnsPolicy", Str, O),
        F(7, "nodeSelector", MapStr, O),
        F(8, "serviceAccountName", Str, O),
        F(9, "serviceAccount", Str, O),
        F(10, "nodeName", Str, O),
        F(11, "hostNetwork", Bool, O),
        F(12, "hostPID", Bool, O),
        F(13, "hostIPC", Bool, O),
        F(14, "securityContext", Nested(&POD_SECURITY_CONTEXT), O),
        F(15, "imagePullSecrets", Nested(&LOCAL_OBJECT_REFERENCE), R),
        F(16, "hostname", Str, O),
        F(17, "subdomain", Str, O),
        F(19, "schedulerName", Str, O),
        F(20, "initContainers", Nested(&CONTAINER), R),
        F(21, "automountServiceAccountToken", BoolPtr, O),
        F(22, "tolerations", Nested(&TOLERATION), R),
        F(23, "hostAliases", Nested(&HOST_ALIAS), R),
        F(24, "priorityClassName", Str, O),
        F(25, "priority", IntPtr, O),
        F(27, "shareProcessNamespace", BoolPtr, O),
        F(28, "readinessGates", Nested(&READINESS_GATE), R),
        F(29, "runtimeClassName", StrPtr, O),
        F(30, "enableServiceLinks", BoolPtr, O),
        F(31, "preemptionPolicy", StrPtr, O),
        F(32, "overhead", MapQuantity, O),
        F(35, "setHostnameAsFQDN", BoolPtr, O),
    ],
};
static POD_SECURITY_CONTEXT: Msg = Msg {
    name: "PodSecurityContext",
    fields: &[
        F(1, "seLinuxOptions", Nested(&SE_LINUX_OPTIONS), O),
        F(2, "runAsUser", IntPtr, O),
        F(3, "runAsNonRoot", BoolPtr, O),
        F(4, "supplementalGroups", Int, R),
        F(5, "fsGroup", IntPtr, O),
        F(6, "runAsGroup", IntPtr, O),
        F(7, "sysctls", Nested(&SYSCTL), R),
        F(9, "fsGroupChangePolicy", StrPtr, O),
        F(10, "seccompProfile", Nested(&SECCOMP_PROFILE), O),
    ],
};
static SE_LINUX_OPTIONS: Msg = Msg {
    name: "SELinuxOptions",
    fields: &[
        F(1, "user", Str, O),
        F(2, "role", Str, O),
        F(3, "type", Str, O),
        F(4, "level", Str, O),
    ],
};
static SYSCTL: Msg = Msg {
    name: "Sysctl",
    fields: &[F(1, "name", Str, O), F(2, "value", Str, O)],
};
static SECCOMP_PROFILE: Msg = Msg {
    name: "SeccompProfile",
    fields: &[F(1, "type", Str, O), F(2, "localhostProfile", StrPtr, O)],
};
static TOLERATION: Msg = Msg {
    name: "Toleration",
    fields: &[
        F(1, "key", Str, O),
        F(2, "operator", Str, O),
        F(3, "value", Str, O),
        F(4, "effect", Str, O),
        F(5, "tolerationSeconds", IntPtr, O),
    ],
};
static HOST_ALIAS: Msg = Msg {
    name: "HostAlias",
    fields: &[F(1, "ip", Str, O), F(2, "hostnames", Str, R)],
};
static READINESS_GATE: Msg = Msg {
    name: "PodReadinessGate",
    fields: &[F(1, "conditionType", Str, O)],
};
static CONTAINER: Msg = Msg {
    name: "Container",
    fields: &[
        F(1, "name", Str, O),
        F(2, "image", Str, O),
        F(3, "command", Str, R),
        F(4, "args", Str, R),
        F(5, "workingDir", Str, O),
        F(6, "ports", Nested(&CONTAINER_PORT), R),
        F(7, "env", Nested(&ENV_VAR), R),
        F(8, "resources", Nested(&RESOURCE_REQUIREMENTS), O),
        F(9, "volumeMounts", Nested(&VOLUME_MOUNT), R),
        F(10, "livenessProbe", Nested(&PROBE), O),
        F(11, "readinessProbe", Nested(&PROBE), O),
        F(12, "lifecycle", Nested(&LIFECYCLE), O),
        F(13, "terminationMessagePath", Str, O),
        F(14, "imagePullPolicy", Str, O),
        F(15, "securityContext", Nested(&SECURITY_CONTEXT), O),
        F(16, "stdin", Bool, O),
        F(17, "stdinOnce", Bool, O),
        F(18, "tty", Bool, O),
        F(19, "envFrom", Nested(&ENV_FROM_SOURCE), R),
        F(20, "terminationMessagePolicy", Str, O),
        F(21, "volumeDevices", Nested(&VOLUME_DEVICE), R),
        F(22, "startupProbe", Nested(&PROBE), O),
    ],
};
static CONTAINER_PORT: Msg = Msg {
    name: "ContainerPort",
    fields: &[
        F(1, "name", Str, O),
        F(2, "hostPort", Int, O),
        F(3, "containerPort", Int, O),
        F(4, "protocol", Str, O),
        F(5, "hostIP", Str, O),
    ],
};
static ENV_VAR: Msg = Msg {
    name: "EnvVar",
    fields: &[
        F(1, "name", Str, O),
        F(2, "value", Str, O),
        F(3, "valueFrom", Nested(&ENV_VAR_SOURCE), O),
    ],
};
static ENV_VAR_SOURCE: Msg = Msg {
    name: "EnvVarSource",
    fields: &[
        F(1, "fieldRef", Nested(&OBJECT_FIELD_SELECTOR), O),
        F(2, "resourceFieldRef", Nested(&RESOURCE_FIELD_SELECTOR), O),
        F(3, "configMapKeyRef", Nested(&KEY_SELECTOR), O),
        F(4, "secretKeyRef", Nested(&KEY_SELECTOR), O),
    ],
};
static OBJECT_FIELD_SELECTOR: Msg = Msg {
    name: "ObjectFieldSelector",
    fields: &[F(1, "apiVersion", Str, O), F(2, "fieldPath", Str, O)],
};
static RESOURCE_FIELD_SELECTOR: Msg = Msg {
    name: "ResourceFieldSelector",
    fields: &[
        F(1, "containerName", Str, O),
        F(2, "resource", Str, O),
        F(3, "divisor", Quantity, O),
    ],
};
/// ConfigMapKeySelector and SecretKeySelector (the same numbers).
static KEY_SELECTOR: Msg = Msg {
    name: "KeySelector",
    fields: &[
        F(
            1,
            "localObjectReference",
            Inline(&LOCAL_OBJECT_REFERENCE),
            O,
        ),
        F(2, "key", Str, O),
        F(3, "optional", BoolPtr, O),
    ],
};
static ENV_FROM_SOURCE: Msg = Msg {
    name: "EnvFromSource",
    fields: &[
        F(1, "prefix", Str, O),
        F(2, "configMapRef", Nested(&ENV_SOURCE), O),
        F(3, "secretRef", Nested(&ENV_SOURCE), O),
    ],
};
/// ConfigMapEnvSource and SecretEnvSource.
static ENV_SOURCE: Msg = Msg {
    name: "EnvSource",
    fields: &[
        F(
            1,
            "localObjectReference",
            Inline(&LOCAL_OBJECT_REFERENCE),
            O,
        ),
        F(2, "optional", BoolPtr, O),
    ],
};
static RESOURCE_REQUIREMENTS: Msg = Msg {
    name: "ResourceRequirements",
    fields: &[
        F(1, "limits", MapQuantity, O),
        F(2, "requests", MapQuantity, O),
    ],
};
static VOLUME_MOUNT: Msg = Msg {
    name: "VolumeMount",
    fields: &[
        F(1, "name", Str, O),
        F(2, "readOnly", Bool, O),
        F(3, "mountPath", Str, O),
        F(4, "subPath", Str, O),
        F(5, "mountPropagation", StrPtr, O),
        F(6, "subPathExpr", Str, O),
    ],
};
static VOLUME_DEVICE: Msg = Msg {
    name: "VolumeDevice",
    fields: &[F(1, "name", Str, O), F(2, "devicePath", Str, O)],
};
static PROBE: Msg = Msg {
    name: "Probe",
    fields: &[
        F(1, "handler", Inline(&HANDLER), O),
        F(2, "initialDelaySeconds", Int, O),
        F(3, "timeoutSeconds", Int, O),
        F(4, "periodSeconds", Int, O),
        F(5, "successThreshold", Int, O),
        F(6, "failureThreshold", Int, O),
        F(7, "terminationGracePeriodSeconds", IntPtr, O),
    ],
};
static LIFECYCLE: Msg = Msg {
    name: "Lifecycle",
    fields: &[
        F(1, "postStart", Nested(&HANDLER), O),
        F(2, "preStop", Nested(&HANDLER), O),
    ],
};
/// ProbeHandler / LifecycleHandler (exec, httpGet, tcpSocket).
static HANDLER: Msg = Msg {
    name: "Handler",
    fields: &[
        F(1, "exec", Nested(&EXEC_ACTION), O),
        F(2, "httpGet", Nested(&HTTP_GET_ACTION), O),
        F(3, "tcpSocket", Nested(&TCP_SOCKET_ACTION), O),
    ],
};
static EXEC_ACTION: Msg = Msg {
    name: "ExecAction",
    fields: &[F(1, "command", Str, R)],
};
static HTTP_GET_ACTION: Msg = Msg {
    name: "HTTPGetAction",
    fields: &[
        F(1, "path", Str, O),
        F(2, "port", IntOrString, O),
        F(3, "host", Str, O),
        F(4, "scheme", Str, O),
        F(5, "httpHeaders", Nested(&HTTP_HEADER), R),
    ],
};
static HTTP_HEADER: Msg = Msg {
    name: "HTTPHeader",
    fields: &[F(1, "name", Str, O), F(2, "value", Str, O)],
};
static TCP_SOCKET_ACTION: Msg = Msg {
    name: "TCPSocketAction",
    fields: &[F(1, "port", IntOrString, O), F(2, "host", Str, O)],
};
static SECURITY_CONTEXT: Msg = Msg {
    name: "SecurityContext",
    fields: &[
        F(1, "capabilities", Nested(&CAPABILITIES), O),
        F(2, "privileged", BoolPtr, O),
        F(3, "seLinuxOptions", Nested(&SE_LINUX_OPTIONS), O),
        F(4, "runAsUser", IntPtr, O),
        F(5, "runAsNonRoot", BoolPtr, O),
        F(6, "readOnlyRootFilesystem", BoolPtr, O),
        F(7, "allowPrivilegeEscalation", BoolPtr, O),
        F(8, "runAsGroup", IntPtr, O),
        F(9, "procMount", StrPtr, O),
        F(11, "seccompProfile", Nested(&SECCOMP_PROFILE), O),
    ],
};
static CAPABILITIES: Msg = Msg {
    name: "Capabilities",
    fields: &[F(1, "add", Str, R), F(2, "drop", Str, R)],
};
static VOLUME: Msg = Msg {
    name: "Volume",
    fields: &[
        F(1, "name", Str, O),
        F(2, "volumeSource", Inline(&VOLUME_SOURCE), O),
    ],
};
static VOLUME_SOURCE: Msg = Msg {
    name: "VolumeSource",
    fields: &[
        F(1, "hostPath", Nested(&HOST_PATH), O),
        F(2, "emptyDir", Nested(&EMPTY_DIR), O),
        F(6, "secret", Nested(&SECRET_VOLUME_SOURCE), O),
        F(10, "persistentVolumeClaim", Nested(&PVC_VOLUME_SOURCE), O),
        F(16, "downwardAPI", Nested(&DOWNWARD_API_VOLUME_SOURCE), O),
        F(19, "configMap", Nested(&CONFIG_MAP_VOLUME_SOURCE), O),
        F(26, "projected", Nested(&PROJECTED_VOLUME_SOURCE), O),
        F(29, "ephemeral", Nested(&EPHEMERAL_VOLUME_SOURCE), O),
    ],
};
static HOST_PATH: Msg = Msg {
    name: "HostPathVolumeSource",
    fields: &[F(1, "path", Str, O), F(2, "type", StrPtr, O)],
};
static EMPTY_DIR: Msg = Msg {
    name: "EmptyDirVolumeSource",
    fields: &[F(1, "medium", Str, O), F(2, "sizeLimit", Quantity, O)],
};
static SECRET_VOLUME_SOURCE: Msg = Msg {
    name: "SecretVolumeSource",
    fields: &[
        F(1, "secretName", Str, O),
        F(2, "items", Nested(&KEY_TO_PATH), R),
        F(3, "defaultMode", IntPtr, O),
        F(4, "optional", BoolPtr, O),
    ],
};
static CONFIG_MAP_VOLUME_SOURCE: Msg = Msg {
    name: "ConfigMapVolumeSource",
    fields: &[
        F(
            1,
            "localObjectReference",
            Inline(&LOCAL_OBJECT_REFERENCE),
            O,
        ),
        F(2, "items", Nested(&KEY_TO_PATH), R),
        F(3, "defaultMode", IntPtr, O),
        F(4, "optional", BoolPtr, O),
    ],
};
static KEY_TO_PATH: Msg = Msg {
    name: "KeyToPath",
    fields: &[
        F(1, "key", Str, O),
        F(2, "path", Str, O),
        F(3, "mode", IntPtr, O),
    ],
};
static PVC_VOLUME_SOURCE: Msg = Msg {
    name: "PersistentVolumeClaimVolumeSource",
    fields: &[F(1, "claimName", Str, O), F(2, "readOnly", Bool, O)],
};
static DOWNWARD_API_VOLUME_SOURCE: Msg = Msg {
    name: "DownwardAPIVolumeSource",
    fields: &[
        F(1, "items", Nested(&DOWNWARD_API_FILE), R),
        F(2, "defaultMode", IntPtr, O),
    ],
};
static DOWNWARD_API_FILE: Msg = Msg {
    name: "DownwardAPIVolumeFile",
    fields: &[
        F(1, "path", Str, O),
        F(2, "fieldRef", Nested(&OBJECT_FIELD_SELECTOR), O),
        F(3, "resourceFieldRef", Nested(&RESOURCE_FIELD_SELECTOR), O),
        F(4, "mode", IntPtr, O),
    ],
};
static PROJECTED_VOLUME_SOURCE: Msg = Msg {
    name: "ProjectedVolumeSource",
    fields: &[
        F(1, "sources", Nested(&VOLUME_PROJECTION), R),
        F(2, "defaultMode", IntPtr, O),
    ],
};
static VOLUME_PROJECTION: Msg = Msg {
    name: "VolumeProjection",
    fields: &[
        F(1, "secret", Nested(&KEY_PROJECTION), O),
        F(2, "downwardAPI", Nested(&DOWNWARD_API_PROJECTION), O),
        F(3, "configMap", Nested(&KEY_PROJECTION), O),
        F(4, "serviceAccountToken", Nested(&TOKEN_PROJECTION), O),
    ],
};
/// SecretProjection and ConfigMapProjection.
static KEY_PROJECTION: Msg = Msg {
    name: "KeyProjection",
    fields: &[
        F(
            1,
            "localObjectReference",
            Inline(&LOCAL_OBJECT_REFERENCE),
            O,
        ),
        F(2, "items", Nested(&KEY_TO_PATH), R),
        F(4, "optional", BoolPtr, O),
    ],
};
static DOWNWARD_API_PROJECTION: Msg = Msg {
    name: "DownwardAPIProjection",
    fields: &[F(1, "items", Nested(&DOWNWARD_API_FILE), R)],
};
static TOKEN_PROJECTION: Msg = Msg {
    name: "ServiceAccountTokenProjection",
    fields: &[
        F(1, "audience", Str, O),
        F(2, "expirationSeconds", IntPtr, O),
        F(3, "path", Str, O),
    ],
};
static EPHEMERAL_VOLUME_SOURCE: Msg = Msg {
    name: "EphemeralVolumeSource",
    fields: &[F(1, "volumeClaimTemplate", Nested(&PVC_TEMPLATE), O)],
};
static PVC_TEMPLATE: Msg = Msg {
    name: "PersistentVolumeClaimTemplate",
    fields: &[
        F(1, "metadata", Nested(&OBJECT_META), O),
        F(2, "spec", Nested(&PVC_SPEC), O),
    ],
};
static PVC_SPEC: Msg = Msg {
    name: "PersistentVolumeClaimSpec",
    fields: &[
        F(1, "accessModes", Str, R),
        F(2, "resources", Nested(&RESOURCE_REQUIREMENTS), O),
        F(3, "volumeName", Str, O),
        F(4, "selector", Nested(&LABEL_SELECTOR), O),
        F(5, "storageClassName", StrPtr, O),
        F(6, "volumeMode", StrPtr, O),
        F(7, "dataSource", Nested(&TYPED_LOCAL_OBJECT_REFERENCE), O),
    ],
};
static TYPED_LOCAL_OBJECT_REFERENCE: Msg = Msg {
    name: "TypedLocalObjectReference",
    fields: &[
        F(1, "apiGroup", StrPtr, O),
        F(2, "kind", Str, O),
        F(3, "name", Str, O),
    ],
};

// rbac.authorization.k8s.io/v1
static ROLE: Msg = Msg {
    name: "Role",
    fields: &[
        F(1, "metadata", Nested(&OBJECT_META), O),
        F(2, "rules", Nested(&POLICY_RULE), R),
    ],
};
static CLUSTER_ROLE: Msg = Msg {
    name: "ClusterRole",
    fields: &[
        F(1, "metadata", Nested(&OBJECT_META), O),
        F(2, "rules", Nested(&POLICY_RULE), R),
        F(3, "aggregationRule", Nested(&AGGREGATION_RULE), O),
    ],
};
static POLICY_RULE: Msg = Msg {
    name: "PolicyRule",
    fields: &[
        F(1, "verbs", Str, R),
        F(2, "apiGroups", Str, R),
        F(3, "resources", Str, R),
        F(4, "resourceNames", Str, R),
        F(5, "nonResourceURLs", Str, R),
    ],
};
static AGGREGATION_RULE: Msg = Msg {
    name: "AggregationRule",
    fields: &[F(1, "clusterRoleSelectors", Nested(&LABEL_SELECTOR), R)],
};
/// RoleBinding and ClusterRoleBinding.
static BINDING: Msg = Msg {
    name: "RoleBinding",
    fields: &[
        F(1, "metadata", Nested(&OBJECT_META), O),
        F(2, "subjects", Nested(&SUBJECT), R),
        F(3, "roleRef", Nested(&ROLE_REF), O),
    ],
};
static SUBJECT: Msg = Msg {
    name: "Subject",
    fields: &[
        F(1, "kind", Str, O),
        F(2, "apiGroup", Str, O),
        F(3, "name", Str, O),
        F(4, "namespace", Str, O),
    ],
};
static ROLE_REF: Msg = Msg {
    name: "RoleRef",
    fields: &[
        F(1, "apiGroup", Str, O),
        F(2, "kind", Str, O),
        F(3, "name", Str, O),
    ],
};

// apps/v1
static DEPLOYMENT: Msg = Msg {
    name: "Deployment",
    fields: &[
        F(1, "metadata", Nested(&OBJECT_META), O),
        F(2, "spec", Nested(&DEPLOYMENT_SPEC), O),
        F(3, "status", Skip, O),
    ],
};
static DEPLOYMENT_SPEC: Msg = Msg {
    name: "DeploymentSpec",
    fields: &[
        F(1, "replicas", IntPtr, O),
        F(2, "selector", Nested(&LABEL_SELECTOR), O),
        F(3, "template", Nested(&POD_TEMPLATE_SPEC), O),
        F(4, "strategy", Nested(&DEPLOYMENT_STRATEGY), O),
        F(5, "minReadySeconds", Int, O),
        F(6, "revisionHistoryLimit", IntPtr, O),
        F(7, "paused", Bool, O),
        F(9, "progressDeadlineSeconds", IntPtr, O),
    ],
};
static DEPLOYMENT_STRATEGY: Msg = Msg {
    name: "DeploymentStrategy",
    fields: &[
        F(1, "type", Str, O),
        F(2, "rollingUpdate", Nested(&ROLLING_UPDATE_DEPLOYMENT), O),
    ],
};
static ROLLING_UPDATE_DEPLOYMENT: Msg = Msg {
    name: "RollingUpdateDeployment",
    fields: &[
        F(1, "maxUnavailable", IntOrString, O),
        F(2, "maxSurge", IntOrString, O),
    ],
};

// batch/v1
static JOB: Msg = Msg {
    name: "Job",
    fields: &[
        F(1, "metadata", Nested(&OBJECT_META), O),
        F(2, "spec", Nested(&JOB_SPEC), O),
        F(3, "status", Skip, O),
    ],
};
static JOB_SPEC: Msg = Msg {
    name: "JobSpec",
    fields: &[
        F(1, "parallelism", IntPtr, O),
        F(2, "completions", IntPtr, O),
        F(3, "activeDeadlineSeconds", IntPtr, O),
        F(4, "selector", Nested(&LABEL_SELECTOR), O),
        F(5, "manualSelector", BoolPtr, O),
        F(6, "template", Nested(&POD_TEMPLATE_SPEC), O),
        F(7, "backoffLimit", IntPtr, O),
        F(8, "ttlSecondsAfterFinished", IntPtr, O),
        F(9, "completionMode", StrPtr, O),
        F(10, "suspend", BoolPtr, O),
    ],
};
static CRON_JOB: Msg = Msg {
    name: "CronJob",
    fields: &[
        F(1, "metadata", Nested(&OBJECT_META), O),
        F(2, "spec", Nested(&CRON_JOB_SPEC), O),
        F(3, "status", Skip, O),
    ],
};
static CRON_JOB_SPEC: Msg = Msg {
    name: "CronJobSpec",
    fields: &[
        F(1, "schedule", Str, O),
        F(2, "startingDeadlineSeconds", IntPtr, O),
        F(3, "concurrencyPolicy", Str, O),
        F(4, "suspend", BoolPtr, O),
        F(5, "jobTemplate", Nested(&JOB_TEMPLATE_SPEC), O),
        F(6, "successfulJobsHistoryLimit", IntPtr, O),
        F(7, "failedJobsHistoryLimit", IntPtr, O),
        F(8, "timeZone", StrPtr, O),
    ],
};
static JOB_TEMPLATE_SPEC: Msg = Msg {
    name: "JobTemplateSpec",
    fields: &[
        F(1, "metadata", Nested(&OBJECT_META), O),
        F(2, "spec", Nested(&JOB_SPEC), O),
    ],
};

// authentication.k8s.io/v1, authorization.k8s.io/v1
static TOKEN_REQUEST: Msg = Msg {
    name: "TokenRequest",
    fields: &[
        F(1, "metadata", Nested(&OBJECT_META), O),
        F(2, "spec", Nested(&TOKEN_REQUEST_SPEC), O),
        F(3, "status", Skip, O),
    ],
};
static TOKEN_REQUEST_SPEC: Msg = Msg {
    name: "TokenRequestSpec",
    fields: &[
        F(1, "audiences", Str, R),
        F(3, "boundObjectRef", Nested(&BOUND_OBJECT_REFERENCE), O),
        F(4, "expirationSeconds", IntPtr, O),
    ],
};
static BOUND_OBJECT_REFERENCE: Msg = Msg {
    name: "BoundObjectReference",
    fields: &[
        F(1, "kind", Str, O),
        F(2, "apiVersion", Str, O),
        F(3, "name", Str, O),
        F(4, "uid", Str, O),
    ],
};
static SELF_SUBJECT_REVIEW: Msg = Msg {
    name: "SelfSubjectReview",
    fields: &[
        F(1, "metadata", Nested(&OBJECT_META), O),
        F(2, "status", Skip, O),
    ],
};
static SELF_SUBJECT_ACCESS_REVIEW: Msg = Msg {
    name: "SelfSubjectAccessReview",
    fields: &[
        F(1, "metadata", Nested(&OBJECT_META), O),
        F(2, "spec", Nested(&SSAR_SPEC), O),
        F(3, "status", Skip, O),
    ],
};
static SSAR_SPEC: Msg = Msg {
    name: "SelfSubjectAccessReviewSpec",
    fields: &[
        F(1, "resourceAttributes", Nested(&RESOURCE_ATTRIBUTES), O),
        F(
            2,
            "nonResourceAttributes",
            Nested(&NON_RESOURCE_ATTRIBUTES),
            O,
        ),
    ],
};
static RESOURCE_ATTRIBUTES: Msg = Msg {
    name: "ResourceAttributes",
    fields: &[
        F(1, "namespace", Str, O),
        F(2, "verb", Str, O),
        F(3, "group", Str, O),
        F(4, "version", Str, O),
        F(5, "resource", Str, O),
        F(6, "subresource", Str, O),
        F(7, "name", Str, O),
    ],
};
static NON_RESOURCE_ATTRIBUTES: Msg = Msg {
    name: "NonResourceAttributes",
    fields: &[F(1, "path", Str, O), F(2, "verb", Str, O)],
};

/// The top-level message of each kind decoded here.
fn kind_message(kind: &str) -> Option<&'static Msg> {
    Some(match kind {
        "Namespace" => &NAMESPACE,
        "ConfigMap" => &CONFIG_MAP,
        "Secret" => &SECRET,
        "ServiceAccount" => &SERVICE_ACCOUNT,
        "Pod" => &POD,
        "Role" => &ROLE,
        "ClusterRole" => &CLUSTER_ROLE,
        "RoleBinding" | "ClusterRoleBinding" => &BINDING,
        "Deployment" => &DEPLOYMENT,
        "Job" => &JOB,
        "CronJob" => &CRON_JOB,
        "TokenRequest" => &TOKEN_REQUEST,
        "SelfSubjectReview" => &SELF_SUBJECT_REVIEW,
        "SelfSubjectAccessReview" => &SELF_SUBJECT_ACCESS_REVIEW,
        _ => return None,
    })
}

fn text(b: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(b).into_owned())
}

fn base64(b: &[u8]) -> Value {
    use base64::Engine;
    Value::String(base64::engine::general_purpose::STANDARD.encode(b))
}

/// A map entry (`key` = 1, `value` = 2), the value read by `value`.
fn entry(b: &[u8], value: fn(&[u8]) -> Result<Value, String>) -> Result<(String, Value), String> {
    let mut k = String::new();
    let mut v = value(&[])?;
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => k = String::from_utf8_lossy(x).into_owned(),
            (2, Field::Bytes(x)) => v = value(x)?,
            _ => {}
        }
    }
    Ok((k, v))
}

fn quantity(b: &[u8]) -> Result<Value, String> {
    let mut s = String::new();
    for (n, f) in fields(b)? {
        if let (1, Field::Bytes(x)) = (n, f) {
            s = String::from_utf8_lossy(x).into_owned();
        }
    }
    Ok(json!(s))
}

fn int_or_string(b: &[u8]) -> Result<Value, String> {
    let (mut kind, mut int, mut string) = (0, 0i64, String::new());
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Varint(v)) => kind = v,
            (2, Field::Varint(v)) => int = v as i64,
            (3, Field::Bytes(x)) => string = String::from_utf8_lossy(x).into_owned(),
            _ => {}
        }
    }
    Ok(if kind == 1 { json!(string) } else { json!(int) })
}

/// The JSON value of one occurrence of a field, `None` for a zero value JSON would leave out.
fn value(f: &F, field: Field<'_>, path: &str) -> Result<Option<Value>, String> {
    let F(n, name, ty, repeated) = f;
    let wrong = || format!("field {n} ({path}.{name}) has an unexpected wire type");
    Ok(match (*ty, field) {
        (Str | StrPtr, Field::Bytes(x)) => {
            let v = text(x);
            (*repeated || matches!(ty, StrPtr) || v != json!("")).then_some(v)
        }
        (Int | IntPtr, Field::Varint(v)) => {
            let v = v as i64;
            (*repeated || matches!(ty, IntPtr) || v != 0).then(|| json!(v))
        }
        (Bool | BoolPtr, Field::Varint(v)) => {
            let v = v != 0;
            (*repeated || matches!(ty, BoolPtr) || v).then(|| json!(v))
        }
        (Quantity, Field::Bytes(x)) => Some(quantity(x)?),
        (IntOrString, Field::Bytes(x)) => Some(int_or_string(x)?),
        (Nested(m), Field::Bytes(x)) => Some(Value::Object(read(x, m, &format!("{path}.{name}"))?)),
        _ => return Err(wrong()),
    })
}

/// Reads a message into a JSON object.
fn read(b: &[u8], msg: &Msg, path: &str) -> Result<Map<String, Value>, String> {
    let mut obj = Map::new();
    for (n, field) in fields(b)? {
        let Some(f) = msg.fields.iter().find(|f| f.0 == n) else {
            return Err(format!(
                "field {n} of {} ({path}) is not decoded by the local test cluster",
                msg.name
            ));
        };
        let F(_, name, ty, repeated) = f;
        match (*ty, field) {
            (Skip, _) => {}
            (Inline(m), Field::Bytes(x)) => obj.extend(read(x, m, path)?),
            (MapStr | MapBytes | MapQuantity, Field::Bytes(x)) => {
                let render: fn(&[u8]) -> Result<Value, String> = match ty {
                    MapStr => |b| Ok(text(b)),
                    MapBytes => |b| Ok(base64(b)),
                    _ => quantity,
                };
                let (k, v) = entry(x, render)?;
                if let Some(m) = obj
                    .entry(*name)
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                {
                    m.insert(k, v);
                }
            }
            (Int, Field::Bytes(packed)) if *repeated => {
                let mut pos = 0;
                while pos < packed.len() {
                    let v = varint(packed, &mut pos)? as i64;
                    if let Some(a) = obj.entry(*name).or_insert_with(|| json!([])).as_array_mut() {
                        a.push(json!(v));
                    }
                }
            }
            (_, field) => {
                let Some(v) = value(f, field, path)? else {
                    continue;
                };
                if *repeated {
                    if let Some(a) = obj.entry(*name).or_insert_with(|| json!([])).as_array_mut() {
                        a.push(v);
                    }
                } else {
                    obj.insert((*name).into(), v);
                }
            }
        }
    }
    Ok(obj)
}

/// Decodes a protobuf request body into JSON; `Err` says why it cannot be.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(b"k8s\0")
        .ok_or("not a Kubernetes protobuf envelope")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(rest)? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (m, g) in fields(tm)? {
                    match (m, g) {
                        (1, Field::Bytes(v)) => {
                            api_version = String::from_utf8_lossy(v).into_owned()
                        }
                        (2, Field::Bytes(v)) => kind = String::from_utf8_lossy(v).into_owned(),
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(r)) => raw = r,
            _ => {}
        }
    }
    let msg = kind_message(&kind).ok_or_else(|| {
        format!("protobuf bodies of kind {kind:?} are not supported by the local test cluster")
    })?;
    let mut v = read(raw, msg, &kind)?;
    v.insert("apiVersion".into(), json!(api_version));
    v.insert("kind".into(), json!(kind));
    Ok(Value::Object(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    /// A length-delimited field (wire type 2).
    fn field(n: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, (n << 3) | 2);
        put_varint(&mut out, bytes.len() as u64);
        out.extend_from_slice(bytes);
        out
    }

    /// A varint field (wire type 0).
    fn int_field(n: u64, v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, n << 3);
        put_varint(&mut out, v);
        out
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
        [b"k8s\0".to_vec(), field(1, &type_meta), field(2, raw)].concat()
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        let ns = |raw: &[u8]| decode(&envelope("v1", "Namespace", raw));
        // A fixed64 field cut short, and a fixed32 field the table does not know.
        assert_eq!(
            ns(&[field(1, &[]), vec![(15 << 3) | 1, 1, 2]].concat()).unwrap_err(),
            "truncated field"
        );
        assert!(
            ns(&[field(1, &[]), vec![(15 << 3) | 5, 1, 2, 3, 4]].concat())
                .unwrap_err()
                .contains("field 15 of Namespace")
        );
        // A known field with a fixed wire type.
        assert!(ns(&[vec![(1 << 3) | 5, 1, 2, 3, 4]].concat()).is_err());
        // Truncated varints and lengths, an over-long varint, a group.
        for raw in [
            vec![0x80],
            vec![(1 << 3) | 2, 0x05, 1],
            vec![
                (1 << 3) | 2,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0x01,
            ],
            vec![0xff; 11],
            vec![(1 << 3) | 3],
        ] {
            assert!(ns(&raw).is_err(), "{raw:?}");
            let mut cut = envelope("v1", "Namespace", &raw);
            cut.truncate(cut.len().saturating_sub(1));
            let _ = decode(&cut);
        }
        assert!(decode(b"k8s\0\x0a").is_err());
        assert!(decode(b"").is_err());
    }

    #[test]
    fn a_self_subject_access_review_decodes() {
        let attrs = [
            field(1, b"demo"),
            field(2, b"create"),
            field(5, b"pods"),
            field(6, b"exec"),
        ]
        .concat();
        let spec = field(1, &attrs);
        let raw = [field(1, &[]), field(2, &spec)].concat();
        let v = decode(&envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            &raw,
        ))
        .unwrap();
        assert_eq!(v["kind"], "SelfSubjectAccessReview");
        assert_eq!(
            v["spec"]["resourceAttributes"],
            json!({"namespace": "demo", "verb": "create", "resource": "pods", "subresource": "exec"})
        );
    }

    /// What Go writes for `kubectl create rolebinding rb --role=r --user=bob`: empty value strings are
    /// on the wire, and `apiGroups: [""]` keeps its empty element.
    #[test]
    fn a_role_and_a_binding_decode_with_empty_strings_dropped_and_kept() {
        let meta = [field(1, b"r"), field(2, b""), field(3, b"")].concat();
        let rule = [field(1, b"get"), field(2, b""), field(3, b"pods")].concat();
        let raw = [field(1, &meta), field(2, &rule)].concat();
        let v = decode(&envelope("rbac.authorization.k8s.io/v1", "Role", &raw)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
                   "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]})
        );
        let subject = [
            field(1, b"User"),
            field(2, b"rbac.authorization.k8s.io"),
            field(3, b"bob"),
            field(4, b""),
        ]
        .concat();
        let role_ref = [
            field(1, b"rbac.authorization.k8s.io"),
            field(2, b"Role"),
            field(3, b"r"),
        ]
        .concat();
        let raw = [
            field(1, &field(1, b"rb")),
            field(2, &subject),
            field(3, &role_ref),
        ]
        .concat();
        let v = decode(&envelope(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            &raw,
        ))
        .unwrap();
        assert_eq!(
            v["subjects"],
            json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"}])
        );
        assert_eq!(v["roleRef"]["kind"], "Role");
    }

    #[test]
    fn a_deployment_keeps_pointer_zeros_int_or_strings_quantities_and_inline_fields() {
        let container = [
            field(1, b"c"),
            field(2, b"busybox"),
            field(
                8,
                &field(
                    1,
                    &[field(1, b"cpu"), field(2, &field(1, b"100m"))].concat(),
                ),
            ),
            int_field(16, 0),
        ]
        .concat();
        let volume = [
            field(1, b"cfg"),
            field(
                2,
                &field(
                    19,
                    &[field(1, &field(1, b"settings")), int_field(3, 420)].concat(),
                ),
            ),
        ]
        .concat();
        let pod_spec = [field(1, &volume), field(2, &container), field(3, b"Always")].concat();
        let template = [
            field(
                1,
                &field(11, &[field(1, b"app"), field(2, b"web")].concat()),
            ),
            field(2, &pod_spec),
        ]
        .concat();
        let strategy = [
            field(1, b"RollingUpdate"),
            field(2, &field(1, &[int_field(1, 1), field(3, b"25%")].concat())),
        ]
        .concat();
        let spec = [
            int_field(1, 0),
            field(3, &template),
            field(4, &strategy),
            int_field(5, 0),
        ]
        .concat();
        let raw = [field(1, &field(1, b"web")), field(2, &spec), field(3, &[])].concat();
        let v = decode(&envelope("apps/v1", "Deployment", &raw)).unwrap();
        assert_eq!(v["spec"]["replicas"], 0, "a *int32 zero is kept");
        assert!(
            v["spec"].get("minReadySeconds").is_none(),
            "an int32 zero is not"
        );
        assert!(v.get("status").is_none());
        assert_eq!(
            v["spec"]["strategy"]["rollingUpdate"],
            json!({"maxUnavailable": "25%"})
        );
        let pod = &v["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"][0],
            json!({"name": "c", "image": "busybox", "resources": {"limits": {"cpu": "100m"}}})
        );
        assert_eq!(
            pod["volumes"][0],
            json!({"name": "cfg", "configMap": {"name": "settings", "defaultMode": 420}})
        );
    }

    #[test]
    fn unknown_kinds_unknown_fields_and_garbage_are_refused() {
        let body = envelope("v1", "Service", &[]);
        assert!(decode(&body).unwrap_err().contains("\"Service\""));
        let odd = envelope("v1", "ConfigMap", &field(9, b"x"));
        assert_eq!(
            decode(&odd).unwrap_err(),
            "field 9 of ConfigMap (ConfigMap) is not decoded by the local test cluster"
        );
        assert!(decode(b"{}").is_err());
        assert!(decode(b"k8s\0\x0a\xff").is_err());
    }
}
