#!/usr/bin/env bash
# Installs the Mosquitto broker the MQTT tests run against, when it is missing and we may.
# Never fails the build: without a broker the MQTT tests skip and say so loudly.
set -u
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
  exit 0
fi
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo_cmd="sudo -n"
  else
    echo "ensure-mosquitto: not root and no password-less sudo: MQTT tests will be skipped" >&2
    exit 0
  fi
fi
if command -v apt-get >/dev/null 2>&1; then
  echo "ensure-mosquitto: installing mosquitto with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq >/dev/null 2>&1 || true
  $sudo_cmd apt-get install -y -qq mosquitto mosquitto-clients >/dev/null 2>&1 \
    || echo "ensure-mosquitto: apt-get install mosquitto failed: MQTT tests will be skipped" >&2
  # Debian starts the packaged service; the tests run their own brokers on free ports.
  if command -v systemctl >/dev/null 2>&1; then
    $sudo_cmd systemctl disable --now mosquitto >/dev/null 2>&1 || true
  fi
else
  echo "ensure-mosquitto: no apt-get here: install mosquitto yourself or MQTT tests skip" >&2
fi
exit 0
