#!/usr/bin/env bash
# Install vasopilot as a service on Raspberry Pi OS (Bookworm, Pi 4 or Pi 5). Run as root from
# a checkout:  sudo deploy/install.sh [path/to/rig.toml]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile="${1:-$here/config/sim.toml}"
prefix=/opt/vasopilot

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo)" >&2
  exit 1
fi
apt-get install -y --no-install-recommends python3-venv python3-lgpio python3-dev
for group in gpio dialout i2c; do
  getent group "$group" >/dev/null || groupadd --system "$group"
done
if ! id vasopilot >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/vasopilot --shell /usr/sbin/nologin \
    --groups gpio,dialout,i2c vasopilot
fi
install -d -o vasopilot -g vasopilot -m 0750 /var/lib/vasopilot
install -d -m 0755 /etc/vasopilot
mkdir -p "$prefix"
cp -a "$here/." "$prefix/src"
# System site packages give the venv Debian's lgpio, which the Pi 5 needs for GPIO.
python3 -m venv --system-site-packages "$prefix/.venv"
"$prefix/.venv/bin/pip" install --quiet "$prefix/src"
if [ ! -e /etc/vasopilot/rig.toml ]; then
  install -m 0640 -g vasopilot "$profile" /etc/vasopilot/rig.toml
fi
if [ ! -e /etc/vasopilot/vasopilot.env ]; then
  # lgpio works on both the Pi 4 and the Pi 5 (pigpio does not run on a Pi 5).
  printf 'GPIOZERO_PIN_FACTORY=lgpio\n' > /etc/vasopilot/vasopilot.env
fi
install -m 0644 "$here/deploy/vasopilot.service" /etc/systemd/system/vasopilot.service
systemctl daemon-reload
systemctl enable vasopilot.service
echo "installed; edit /etc/vasopilot/rig.toml, then: systemctl start vasopilot"
