# Sourced by scripts/stack.sh and scripts/browser.sh (which define `say`, `die` and STACK_DIR):
# installs Debian packages quietly, as root, with the packages' own services never started
# (policy-rc.d 101: we run our own instances), running `apt-get update` once per machine.
apt_install() {
  say "installing Debian packages: $*"
  [ "$(id -u)" = 0 ] || die "need root to apt-get install $* (or install them yourself)"
  if [ ! -f "$STACK_DIR/.apt-updated" ]; then
    apt-get update -qq >&2
    mkdir -p "$STACK_DIR" && touch "$STACK_DIR/.apt-updated"
  fi
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' >$policy; chmod +x $policy; created=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
  [ $created = 1 ] && rm -f $policy
  return 0
}
