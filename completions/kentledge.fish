# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_kentledge_global_optspecs
    string join \n c/config= kubeconfig= context= n/namespace= dry-run o/output= log-format= v/verbose q/quiet h/help V/version
end

function __fish_kentledge_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_kentledge_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_kentledge_using_subcommand
    set -l cmd (__fish_kentledge_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c kentledge -n "__fish_kentledge_needs_command" -s c -l config -d 'The config file' -r -F
complete -c kentledge -n "__fish_kentledge_needs_command" -l kubeconfig -d 'The kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else in-cluster]' -r -F
complete -c kentledge -n "__fish_kentledge_needs_command" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c kentledge -n "__fish_kentledge_needs_command" -s n -l namespace -d 'The namespace [default: the config\'s metadata.namespace, else the pod\'s namespace in a cluster]' -r
complete -c kentledge -n "__fish_kentledge_needs_command" -s o -l output -d 'Format of results and summaries on stdout' -r -f -a "text\t'Tables and sentences for people'
json\t'One JSON document for machines'"
complete -c kentledge -n "__fish_kentledge_needs_command" -l log-format -d 'Format of log lines on stderr: auto is text on a terminal, JSON lines otherwise' -r -f -a "auto\t'Text on a terminal, JSON lines otherwise'
text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c kentledge -n "__fish_kentledge_needs_command" -l dry-run -d 'Print the plan and change nothing'
complete -c kentledge -n "__fish_kentledge_needs_command" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c kentledge -n "__fish_kentledge_needs_command" -s q -l quiet -d 'Less log detail (-q warnings only, -qq errors only)'
complete -c kentledge -n "__fish_kentledge_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kentledge -n "__fish_kentledge_needs_command" -s V -l version -d 'Print version'
complete -c kentledge -n "__fish_kentledge_needs_command" -f -a "snapshot" -d 'Take application-consistent CSI snapshots of the config\'s PVCs (hooks, then snapshots)'
complete -c kentledge -n "__fish_kentledge_needs_command" -f -a "backup" -d 'Copy volumes, databases and buckets offsite into borg and restic repositories'
complete -c kentledge -n "__fish_kentledge_needs_command" -f -a "prune" -d 'Apply retention: mark, then delete, snapshots and archives that no rule keeps'
complete -c kentledge -n "__fish_kentledge_needs_command" -f -a "restore" -d 'Restore a volume, a database or a bucket'
complete -c kentledge -n "__fish_kentledge_needs_command" -f -a "list" -d 'List snapshots and archives with their retention state'
complete -c kentledge -n "__fish_kentledge_needs_command" -f -a "status" -d 'How fresh each PVC\'s, database\'s and bucket\'s newest snapshot and copies are, against spec.status (text, JSON or Prometheus); exits 1 unless everything is fresh'
complete -c kentledge -n "__fish_kentledge_needs_command" -f -a "check" -d 'Validate the config offline; with --repositories, verify the repositories'
complete -c kentledge -n "__fish_kentledge_needs_command" -f -a "completions" -d 'Print shell completions'
complete -c kentledge -n "__fish_kentledge_needs_command" -f -a "version" -d 'Print kentledge\'s version; with --engines, the versions of the engines this image or machine has (borg, restic, ssh, rsync)'
complete -c kentledge -n "__fish_kentledge_needs_command" -f -a "mover" -d 'In a mover pod: run one engine job (used by kentledge itself, not by people)'
complete -c kentledge -n "__fish_kentledge_using_subcommand snapshot" -l target -d 'Only these PVCs (repeatable); default: every PVC the config\'s targets select' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand snapshot" -l lock-timeout -d 'How long to wait for another run of this config to finish before failing' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand snapshot" -l pushgateway -d 'Push the run\'s results (each target\'s success, bytes and duration; the run\'s exit code and duration) to this Prometheus Pushgateway (`http://pushgateway:9091`)' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand snapshot" -s c -l config -d 'The config file' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand snapshot" -l kubeconfig -d 'The kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else in-cluster]' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand snapshot" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand snapshot" -s n -l namespace -d 'The namespace [default: the config\'s metadata.namespace, else the pod\'s namespace in a cluster]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand snapshot" -s o -l output -d 'Format of results and summaries on stdout' -r -f -a "text\t'Tables and sentences for people'
json\t'One JSON document for machines'"
complete -c kentledge -n "__fish_kentledge_using_subcommand snapshot" -l log-format -d 'Format of log lines on stderr: auto is text on a terminal, JSON lines otherwise' -r -f -a "auto\t'Text on a terminal, JSON lines otherwise'
text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c kentledge -n "__fish_kentledge_using_subcommand snapshot" -l dry-run -d 'Print the plan and change nothing'
complete -c kentledge -n "__fish_kentledge_using_subcommand snapshot" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c kentledge -n "__fish_kentledge_using_subcommand snapshot" -s q -l quiet -d 'Less log detail (-q warnings only, -qq errors only)'
complete -c kentledge -n "__fish_kentledge_using_subcommand snapshot" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kentledge -n "__fish_kentledge_using_subcommand snapshot" -s V -l version -d 'Print version'
complete -c kentledge -n "__fish_kentledge_using_subcommand backup" -l target -d 'Only these PVCs, databases or buckets (repeatable); default: everything in spec.offsite' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand backup" -l repository -d 'Only these repositories (repeatable)' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand backup" -l from -d 'Back up this VolumeSnapshot instead of each PVC\'s newest ready one' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand backup" -l lock-timeout -d 'How long to wait for another run of this config to finish before failing' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand backup" -l pushgateway -d 'Push the run\'s results (each target\'s success, bytes and duration; the run\'s exit code and duration) to this Prometheus Pushgateway (`http://pushgateway:9091`)' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand backup" -s c -l config -d 'The config file' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand backup" -l kubeconfig -d 'The kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else in-cluster]' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand backup" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand backup" -s n -l namespace -d 'The namespace [default: the config\'s metadata.namespace, else the pod\'s namespace in a cluster]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand backup" -s o -l output -d 'Format of results and summaries on stdout' -r -f -a "text\t'Tables and sentences for people'
json\t'One JSON document for machines'"
complete -c kentledge -n "__fish_kentledge_using_subcommand backup" -l log-format -d 'Format of log lines on stderr: auto is text on a terminal, JSON lines otherwise' -r -f -a "auto\t'Text on a terminal, JSON lines otherwise'
text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c kentledge -n "__fish_kentledge_using_subcommand backup" -l snapshot-now -d 'Take a snapshot first (hooks included) and back that up'
complete -c kentledge -n "__fish_kentledge_using_subcommand backup" -l dry-run -d 'Print the plan and change nothing'
complete -c kentledge -n "__fish_kentledge_using_subcommand backup" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c kentledge -n "__fish_kentledge_using_subcommand backup" -s q -l quiet -d 'Less log detail (-q warnings only, -qq errors only)'
complete -c kentledge -n "__fish_kentledge_using_subcommand backup" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kentledge -n "__fish_kentledge_using_subcommand backup" -s V -l version -d 'Print version'
complete -c kentledge -n "__fish_kentledge_using_subcommand prune" -l only -d 'What to prune' -r -f -a "all\t'VolumeSnapshots and repositories'
snapshots\t'Only VolumeSnapshots'
repositories\t'Only repository archives'"
complete -c kentledge -n "__fish_kentledge_using_subcommand prune" -l now -d 'Evaluate retention as if it were this time (RFC 3339, e.g. 2026-11-21T03:00:00Z)' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand prune" -l lock-timeout -d 'How long to wait for another run of this config to finish before failing' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand prune" -s c -l config -d 'The config file' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand prune" -l kubeconfig -d 'The kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else in-cluster]' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand prune" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand prune" -s n -l namespace -d 'The namespace [default: the config\'s metadata.namespace, else the pod\'s namespace in a cluster]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand prune" -s o -l output -d 'Format of results and summaries on stdout' -r -f -a "text\t'Tables and sentences for people'
json\t'One JSON document for machines'"
complete -c kentledge -n "__fish_kentledge_using_subcommand prune" -l log-format -d 'Format of log lines on stderr: auto is text on a terminal, JSON lines otherwise' -r -f -a "auto\t'Text on a terminal, JSON lines otherwise'
text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c kentledge -n "__fish_kentledge_using_subcommand prune" -l dry-run -d 'Print the plan and change nothing'
complete -c kentledge -n "__fish_kentledge_using_subcommand prune" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c kentledge -n "__fish_kentledge_using_subcommand prune" -s q -l quiet -d 'Less log detail (-q warnings only, -qq errors only)'
complete -c kentledge -n "__fish_kentledge_using_subcommand prune" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kentledge -n "__fish_kentledge_using_subcommand prune" -s V -l version -d 'Print version'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and not __fish_seen_subcommand_from volume database bucket" -s c -l config -d 'The config file' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and not __fish_seen_subcommand_from volume database bucket" -l kubeconfig -d 'The kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else in-cluster]' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and not __fish_seen_subcommand_from volume database bucket" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and not __fish_seen_subcommand_from volume database bucket" -s n -l namespace -d 'The namespace [default: the config\'s metadata.namespace, else the pod\'s namespace in a cluster]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and not __fish_seen_subcommand_from volume database bucket" -s o -l output -d 'Format of results and summaries on stdout' -r -f -a "text\t'Tables and sentences for people'
json\t'One JSON document for machines'"
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and not __fish_seen_subcommand_from volume database bucket" -l log-format -d 'Format of log lines on stderr: auto is text on a terminal, JSON lines otherwise' -r -f -a "auto\t'Text on a terminal, JSON lines otherwise'
text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and not __fish_seen_subcommand_from volume database bucket" -l dry-run -d 'Print the plan and change nothing'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and not __fish_seen_subcommand_from volume database bucket" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and not __fish_seen_subcommand_from volume database bucket" -s q -l quiet -d 'Less log detail (-q warnings only, -qq errors only)'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and not __fish_seen_subcommand_from volume database bucket" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and not __fish_seen_subcommand_from volume database bucket" -s V -l version -d 'Print version'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and not __fish_seen_subcommand_from volume database bucket" -f -a "volume" -d 'Restore a PVC from a snapshot or from a repository archive'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and not __fish_seen_subcommand_from volume database bucket" -f -a "database" -d 'Restore a database dump into its database'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and not __fish_seen_subcommand_from volume database bucket" -f -a "bucket" -d 'Restore a bucket\'s objects from a repository archive'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -l snapshot -d 'Restore from this VolumeSnapshot (or give --repository)' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -l repository -d 'Restore from an archive in this repository' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -l archive -d 'The archive (borg archive name or restic snapshot id); default: the newest' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -l as-of -d 'The newest archive taken at or before this time (RFC 3339)' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -l to -d 'Restore into a new PVC of this name (or give --in-place)' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -l accept -d 'With --in-place: also stop what is refused by default (repeatable): bare-pods (deleted, not recreated), autoscaled (scaled to 0, which pauses the autoscaler), gitops (may be scaled back up by its controller: suspend its sync first)' -r -f -a "bare-pods\t'Pods of no workload that mount the PVC: deleted, not recreated'
autoscaled\t'Workloads a HorizontalPodAutoscaler scales'
gitops\t'Workloads a GitOps controller (Flux, Argo CD) manages'"
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -l size -d 'With --to: the new PVC\'s size [default: the source PVC\'s, else room for the data]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -l storage-class -d 'With --to: the new PVC\'s storage class [default: the source PVC\'s, else the cluster\'s default]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -l lock-timeout -d 'How long to wait for another run of this config to finish before failing' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -s c -l config -d 'The config file' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -l kubeconfig -d 'The kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else in-cluster]' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -s n -l namespace -d 'The namespace [default: the config\'s metadata.namespace, else the pod\'s namespace in a cluster]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -s o -l output -d 'Format of results and summaries on stdout' -r -f -a "text\t'Tables and sentences for people'
json\t'One JSON document for machines'"
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -l log-format -d 'Format of log lines on stderr: auto is text on a terminal, JSON lines otherwise' -r -f -a "auto\t'Text on a terminal, JSON lines otherwise'
text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -l in-place -d 'Restore into the PVC itself: scale its workloads down, take a safety snapshot, restore, scale up'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -l resume -d 'With --in-place: finish or roll back an in-place restore that a killed run left'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -l dry-run -d 'Print the plan and change nothing'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -s q -l quiet -d 'Less log detail (-q warnings only, -qq errors only)'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from volume" -s V -l version -d 'Print version'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from database" -l repository -d 'Restore from an archive in this repository' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from database" -l archive -d 'The archive (borg archive name or restic snapshot id); default: the newest' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from database" -l as-of -d 'The newest archive taken at or before this time (RFC 3339)' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from database" -l database -d 'This database of the entry\'s dumps [default: the only one the repository has dumps of]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from database" -l to-database -d 'Load it into this database (created; the usual way to get a table back without touching production) [default: the database\'s own name]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from database" -l lock-timeout -d 'How long to wait for another run of this config to finish before failing' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from database" -s c -l config -d 'The config file' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from database" -l kubeconfig -d 'The kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else in-cluster]' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from database" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from database" -s n -l namespace -d 'The namespace [default: the config\'s metadata.namespace, else the pod\'s namespace in a cluster]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from database" -s o -l output -d 'Format of results and summaries on stdout' -r -f -a "text\t'Tables and sentences for people'
json\t'One JSON document for machines'"
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from database" -l log-format -d 'Format of log lines on stderr: auto is text on a terminal, JSON lines otherwise' -r -f -a "auto\t'Text on a terminal, JSON lines otherwise'
text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from database" -l replace -d 'Replace the target database if it exists, after dumping it into the same repository (the safety dump, named in the output); without it an existing target is refused'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from database" -l dry-run -d 'Print the plan and change nothing'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from database" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from database" -s q -l quiet -d 'Less log detail (-q warnings only, -qq errors only)'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from database" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from database" -s V -l version -d 'Print version'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -l repository -d 'Restore from an archive in this repository' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -l archive -d 'The archive (borg archive name or restic snapshot id); default: the newest' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -l as-of -d 'The newest archive taken at or before this time (RFC 3339)' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -l to-bucket -d 'Restore into this bucket instead of the original' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -l to-prefix -d 'Restore under this prefix instead of the original (the archive\'s prefix is replaced by it in every key)' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -l lock-timeout -d 'How long to wait for another run of this config to finish before failing' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -s c -l config -d 'The config file' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -l kubeconfig -d 'The kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else in-cluster]' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -s n -l namespace -d 'The namespace [default: the config\'s metadata.namespace, else the pod\'s namespace in a cluster]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -s o -l output -d 'Format of results and summaries on stdout' -r -f -a "text\t'Tables and sentences for people'
json\t'One JSON document for machines'"
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -l log-format -d 'Format of log lines on stderr: auto is text on a terminal, JSON lines otherwise' -r -f -a "auto\t'Text on a terminal, JSON lines otherwise'
text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -l overwrite -d 'Rewrite objects of the target prefix whose bytes differ from the archive\'s; without it such objects stop the restore before anything is written'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -l delete-extra -d 'Delete objects of the target prefix the archive does not have; without it (or --overwrite, which leaves them) such objects stop the restore before anything is written'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -l dry-run -d 'Print the plan and change nothing'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -s q -l quiet -d 'Less log detail (-q warnings only, -qq errors only)'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kentledge -n "__fish_kentledge_using_subcommand restore; and __fish_seen_subcommand_from bucket" -s V -l version -d 'Print version'
complete -c kentledge -n "__fish_kentledge_using_subcommand list" -l repository -d 'Only this repository\'s archives (repeatable)' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand list" -l series -d 'Only this series: a PVC, database or bucket name (repeatable)' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand list" -l since -d 'Only restore points taken at or after this time (RFC 3339)' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand list" -l until -d 'Only restore points taken at or before this time (RFC 3339)' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand list" -s c -l config -d 'The config file' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand list" -l kubeconfig -d 'The kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else in-cluster]' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand list" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand list" -s n -l namespace -d 'The namespace [default: the config\'s metadata.namespace, else the pod\'s namespace in a cluster]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand list" -s o -l output -d 'Format of results and summaries on stdout' -r -f -a "text\t'Tables and sentences for people'
json\t'One JSON document for machines'"
complete -c kentledge -n "__fish_kentledge_using_subcommand list" -l log-format -d 'Format of log lines on stderr: auto is text on a terminal, JSON lines otherwise' -r -f -a "auto\t'Text on a terminal, JSON lines otherwise'
text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c kentledge -n "__fish_kentledge_using_subcommand list" -l sizes -d 'Ask the engines for each archive\'s size and file count (borg info, restic stats before 0.17): slower; restic 0.17 and newer list them anyway'
complete -c kentledge -n "__fish_kentledge_using_subcommand list" -l dry-run -d 'Print the plan and change nothing'
complete -c kentledge -n "__fish_kentledge_using_subcommand list" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c kentledge -n "__fish_kentledge_using_subcommand list" -s q -l quiet -d 'Less log detail (-q warnings only, -qq errors only)'
complete -c kentledge -n "__fish_kentledge_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kentledge -n "__fish_kentledge_using_subcommand list" -s V -l version -d 'Print version'
complete -c kentledge -n "__fish_kentledge_using_subcommand status" -s c -l config -d 'The config file' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand status" -l kubeconfig -d 'The kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else in-cluster]' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand status" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand status" -s n -l namespace -d 'The namespace [default: the config\'s metadata.namespace, else the pod\'s namespace in a cluster]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand status" -s o -l output -d 'Format of results and summaries on stdout' -r -f -a "text\t'Tables and sentences for people'
json\t'One JSON document for machines'"
complete -c kentledge -n "__fish_kentledge_using_subcommand status" -l log-format -d 'Format of log lines on stderr: auto is text on a terminal, JSON lines otherwise' -r -f -a "auto\t'Text on a terminal, JSON lines otherwise'
text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c kentledge -n "__fish_kentledge_using_subcommand status" -l snapshots-only -d 'Only the snapshots and their backed-up labels (no mover pods: databases and buckets, which have no snapshots, are then not seen)'
complete -c kentledge -n "__fish_kentledge_using_subcommand status" -l prometheus -d 'Print the Prometheus text exposition format instead of text or JSON'
complete -c kentledge -n "__fish_kentledge_using_subcommand status" -l dry-run -d 'Print the plan and change nothing'
complete -c kentledge -n "__fish_kentledge_using_subcommand status" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c kentledge -n "__fish_kentledge_using_subcommand status" -s q -l quiet -d 'Less log detail (-q warnings only, -qq errors only)'
complete -c kentledge -n "__fish_kentledge_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kentledge -n "__fish_kentledge_using_subcommand status" -s V -l version -d 'Print version'
complete -c kentledge -n "__fish_kentledge_using_subcommand check" -l read-data -d 'With --repositories: also read this share of the data (e.g. 5%)' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand check" -s c -l config -d 'The config file' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand check" -l kubeconfig -d 'The kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else in-cluster]' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand check" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand check" -s n -l namespace -d 'The namespace [default: the config\'s metadata.namespace, else the pod\'s namespace in a cluster]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand check" -s o -l output -d 'Format of results and summaries on stdout' -r -f -a "text\t'Tables and sentences for people'
json\t'One JSON document for machines'"
complete -c kentledge -n "__fish_kentledge_using_subcommand check" -l log-format -d 'Format of log lines on stderr: auto is text on a terminal, JSON lines otherwise' -r -f -a "auto\t'Text on a terminal, JSON lines otherwise'
text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c kentledge -n "__fish_kentledge_using_subcommand check" -l repositories -d 'Also verify every repository (borg check / restic check) in mover pods'
complete -c kentledge -n "__fish_kentledge_using_subcommand check" -l dry-run -d 'Print the plan and change nothing'
complete -c kentledge -n "__fish_kentledge_using_subcommand check" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c kentledge -n "__fish_kentledge_using_subcommand check" -s q -l quiet -d 'Less log detail (-q warnings only, -qq errors only)'
complete -c kentledge -n "__fish_kentledge_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kentledge -n "__fish_kentledge_using_subcommand check" -s V -l version -d 'Print version'
complete -c kentledge -n "__fish_kentledge_using_subcommand completions" -s c -l config -d 'The config file' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand completions" -l kubeconfig -d 'The kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else in-cluster]' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand completions" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand completions" -s n -l namespace -d 'The namespace [default: the config\'s metadata.namespace, else the pod\'s namespace in a cluster]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand completions" -s o -l output -d 'Format of results and summaries on stdout' -r -f -a "text\t'Tables and sentences for people'
json\t'One JSON document for machines'"
complete -c kentledge -n "__fish_kentledge_using_subcommand completions" -l log-format -d 'Format of log lines on stderr: auto is text on a terminal, JSON lines otherwise' -r -f -a "auto\t'Text on a terminal, JSON lines otherwise'
text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c kentledge -n "__fish_kentledge_using_subcommand completions" -l dry-run -d 'Print the plan and change nothing'
complete -c kentledge -n "__fish_kentledge_using_subcommand completions" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c kentledge -n "__fish_kentledge_using_subcommand completions" -s q -l quiet -d 'Less log detail (-q warnings only, -qq errors only)'
complete -c kentledge -n "__fish_kentledge_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kentledge -n "__fish_kentledge_using_subcommand completions" -s V -l version -d 'Print version'
complete -c kentledge -n "__fish_kentledge_using_subcommand version" -s c -l config -d 'The config file' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand version" -l kubeconfig -d 'The kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else in-cluster]' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand version" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand version" -s n -l namespace -d 'The namespace [default: the config\'s metadata.namespace, else the pod\'s namespace in a cluster]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand version" -s o -l output -d 'Format of results and summaries on stdout' -r -f -a "text\t'Tables and sentences for people'
json\t'One JSON document for machines'"
complete -c kentledge -n "__fish_kentledge_using_subcommand version" -l log-format -d 'Format of log lines on stderr: auto is text on a terminal, JSON lines otherwise' -r -f -a "auto\t'Text on a terminal, JSON lines otherwise'
text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c kentledge -n "__fish_kentledge_using_subcommand version" -l engines -d 'Also run each engine the mover needs and print its version; exits 1 when one is missing'
complete -c kentledge -n "__fish_kentledge_using_subcommand version" -l dry-run -d 'Print the plan and change nothing'
complete -c kentledge -n "__fish_kentledge_using_subcommand version" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c kentledge -n "__fish_kentledge_using_subcommand version" -s q -l quiet -d 'Less log detail (-q warnings only, -qq errors only)'
complete -c kentledge -n "__fish_kentledge_using_subcommand version" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kentledge -n "__fish_kentledge_using_subcommand version" -s V -l version -d 'Print version'
complete -c kentledge -n "__fish_kentledge_using_subcommand mover" -l job -d 'The job, as JSON (no secrets: they are mounted files and env references)' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand mover" -s c -l config -d 'The config file' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand mover" -l kubeconfig -d 'The kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else in-cluster]' -r -F
complete -c kentledge -n "__fish_kentledge_using_subcommand mover" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand mover" -s n -l namespace -d 'The namespace [default: the config\'s metadata.namespace, else the pod\'s namespace in a cluster]' -r
complete -c kentledge -n "__fish_kentledge_using_subcommand mover" -s o -l output -d 'Format of results and summaries on stdout' -r -f -a "text\t'Tables and sentences for people'
json\t'One JSON document for machines'"
complete -c kentledge -n "__fish_kentledge_using_subcommand mover" -l log-format -d 'Format of log lines on stderr: auto is text on a terminal, JSON lines otherwise' -r -f -a "auto\t'Text on a terminal, JSON lines otherwise'
text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c kentledge -n "__fish_kentledge_using_subcommand mover" -l dry-run -d 'Print the plan and change nothing'
complete -c kentledge -n "__fish_kentledge_using_subcommand mover" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c kentledge -n "__fish_kentledge_using_subcommand mover" -s q -l quiet -d 'Less log detail (-q warnings only, -qq errors only)'
complete -c kentledge -n "__fish_kentledge_using_subcommand mover" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kentledge -n "__fish_kentledge_using_subcommand mover" -s V -l version -d 'Print version'
