#!/usr/bin/env bash
# Install vasopilot as a service on Raspberry Pi OS (Bookworm, Pi 4 or Pi 5). Run as root from
# a checkout:
#   sudo deploy/install.sh [KIND]        KIND: sim (default), newera, harvard, stepper, bridge;
#                                        writes a complete, commented profile set
#   sudo deploy/install.sh PROFILE.toml  copies your profile with the drug library and syringe
#                                        catalogue it names
# Either way /etc/vasopilot/rig.toml's journal is put in the service's state folder, the one
# place it may write under ProtectSystem=strict; an existing /etc/vasopilot/rig.toml is kept.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
what="${1:-sim}"
prefix=/opt/vasopilot
etc=/etc/vasopilot
state=/var/lib/vasopilot
journal="$state/vasopilot-journal.sqlite"
kinds="sim newera harvard stepper bridge"

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo)" >&2
  exit 1
fi
if [[ " $kinds " != *" $what "* ]] && [ ! -f "$what" ]; then
  echo "install.sh: $what is neither a kind ($kinds) nor a profile file" >&2
  exit 2
fi
apt-get install -y --no-install-recommends python3-venv python3-lgpio python3-dev
for group in gpio dialout i2c; do
  getent group "$group" >/dev/null || groupadd --system "$group"
done
if ! id vasopilot >/dev/null 2>&1; then
  useradd --system --home-dir "$state" --shell /usr/sbin/nologin \
    --groups gpio,dialout,i2c vasopilot
fi
install -d -o vasopilot -g vasopilot -m 0750 "$state"
install -d -m 0755 "$etc"
mkdir -p "$prefix"
cp -a "$here/." "$prefix/src"
# System site packages give the venv Debian's lgpio, which the Pi 5 needs for GPIO.
python3 -m venv --system-site-packages "$prefix/.venv"
"$prefix/.venv/bin/pip" install --quiet "$prefix/src"
vasopilot="$prefix/.venv/bin/vasopilot"

install_profile() {  # a profile file and the files it names, beside it in $etc
  local profile="$1" from key name
  from="$(cd "$(dirname "$profile")" && pwd)"
  install -m 0640 -g vasopilot "$profile" "$etc/rig.toml"
  for key in drug_library syringe_catalogue; do
    name="$("$prefix/.venv/bin/python" -c 'import sys, tomllib
print(tomllib.load(open(sys.argv[1], "rb")).get(sys.argv[2]) or "")' "$profile" "$key")"
    case "$name" in
      "" | /*) ;;  # the embedded default, or an absolute path the profile keeps
      *..*) echo "install.sh: $key = \"$name\" leaves the profile's folder; copy it by hand" >&2
            exit 2 ;;
      *) install -D -m 0644 "$from/$name" "$etc/$name" ;;
    esac
  done
  if grep -q '^journal *=' "$etc/rig.toml"; then
    sed -i "s|^journal *=.*|journal = \"$journal\"|" "$etc/rig.toml"
  else
    sed -i "1i journal = \"$journal\"" "$etc/rig.toml"
  fi
}

if [ ! -e "$etc/rig.toml" ]; then
  if [[ " $kinds " == *" $what "* ]]; then
    "$vasopilot" init-rig "$what" "$etc" --name rig.toml --journal "$journal"
    chgrp vasopilot "$etc/rig.toml" && chmod 0640 "$etc/rig.toml"
  else
    install_profile "$what"
  fi
fi
if [ ! -e "$etc/vasopilot.env" ]; then
  # lgpio works on both the Pi 4 and the Pi 5 (pigpio does not run on a Pi 5).
  printf 'GPIOZERO_PIN_FACTORY=lgpio\n' > "$etc/vasopilot.env"
fi
install -m 0644 "$here/deploy/vasopilot.service" /etc/systemd/system/vasopilot.service
systemctl daemon-reload
systemctl enable vasopilot.service
# Checked as the service user, so a journal it could not write is refused now, not at start.
if runuser -u vasopilot -- "$vasopilot" check --rig "$etc/rig.toml"; then
  echo "installed; edit $etc/rig.toml if needed, then: systemctl start vasopilot"
else
  echo "installed, but $etc/rig.toml is refused (above): edit it, check it with" \
    "'$vasopilot check --rig $etc/rig.toml', then: systemctl start vasopilot" >&2
fi
