# Sourced: this host's target in the packaging API's words, for the scripts that package for
# the machine they run on: $platform (TargetPlatform JSON) and $options (CompilerOptions).
if [ "$(uname -m)" = aarch64 ]; then
    platform='{"Os": "LINUX", "Arch": "ARM64"}' options="{'mcpu': 'generic'}"
elif grep -qw avx512f /proc/cpuinfo; then
    platform='{"Os": "LINUX", "Arch": "X86_64"}' options="{'mcpu': 'skylake-avx512'}"
else
    platform='{"Os": "LINUX", "Arch": "X86_64"}' options="{'mcpu': 'core-avx2'}"
fi
