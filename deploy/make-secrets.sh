#!/bin/sh
# Writes fresh random secrets for compose.yaml into DIR (default ./secrets), keeping any
# file already there. Never commit that folder.
set -eu
dir="${1:-secrets}"
umask 077
mkdir -p "$dir"
new() { [ -s "$dir/$1" ] || python3 -c 'import secrets; print(secrets.token_urlsafe(48))' > "$dir/$1"; }
for name in postgres_password rempart_token_secret rempart_pseudonym_key rempart_data_key \
    rempart_audit_signing_key rempart_notice_code_key rempart_metrics_token; do
    new "$name"
done
[ -s "$dir/rempart_database_url" ] || \
    printf 'postgresql+psycopg://rempart:%s@postgres:5432/rempart\n' "$(cat "$dir/postgres_password")" \
    > "$dir/rempart_database_url"
echo "secrets in $dir"
