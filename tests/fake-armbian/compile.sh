#!/usr/bin/env bash
# A stand-in for Armbian's ./compile.sh that Quire's tests run: it takes the same arguments
# (`build KEY=value…`), prints alerts in Armbian's log format (`--> (SECONDS) LEVEL: message`,
# coloured) with the stages of a real build, and leaves artifacts named and made as Armbian's
# in output/images: the image, its .img.txt, and per COMPRESS_OUTPUTIMAGE its .xz or .zst and
# the .sha of what is kept. It takes the files laid into userpatches/ into the image.
#
# Settings only the tests use (passed like any other KEY=value):
#   QUIRE_FAKE_OUTCOME=fail   stops with an error after the kernel stage (exit 2)
#   QUIRE_FAKE_OUTCOME=hang   starts a child that sleeps QUIRE_FAKE_HANG_SECS (100000) and waits for it
#   QUIRE_FAKE_OUTCOME=hang-once  hangs so the first time in this checkout, then builds normally
#   QUIRE_FAKE_OUTCOME=badsha writes a .sha that does not match its file
#   QUIRE_FAKE_LINES=N        prints N compiler lines in the kernel stage (default 40)
#   QUIRE_FAKE_RATE=N         at about N lines a second (default: as fast as it can)
#   QUIRE_FAKE_WAIT=S         waits S seconds before printing anything (a build queued behind setup)
#   QUIRE_FAKE_DELAY=S        sleeps S seconds between stages (default 0.05)
#   QUIRE_FAKE_IMAGE_MB=N     the image's size in MiB (default 4)
set -euo pipefail
cd "$(dirname "$0")"

[[ "${1:-}" == "build" ]] || { echo "usage: ./compile.sh build KEY=value…" >&2; exit 1; }
shift
for arg in "$@"; do
	[[ "$arg" == *=* ]] || { echo "[🚨] not KEY=value: $arg" >&2; exit 1; }
	declare -g "${arg%%=*}=${arg#*=}"
done
: "${BOARD:?BOARD is required}" "${BRANCH:?}" "${RELEASE:?}"
OUTCOME="${QUIRE_FAKE_OUTCOME:-}"
DELAY="${QUIRE_FAKE_DELAY:-0.05}"

sleep "${QUIRE_FAKE_WAIT:-0}"
started=$SECONDS
alert() { # level message
	local color='\e[1;32m'
	[[ "$1" == warn ]] && color='\e[1;35m'
	[[ "$1" == err ]] && color='\e[1;31m'
	echo -e "--> ($((SECONDS - started))) ${color}${1^^}\e[0;0m: $2"
}
stage() {
	alert info "$1"
	sleep "$DELAY"
}

stage "Preparing host [ fake Armbian, board ${BOARD} ]"
echo "[🌱] Build host OK [ $(uname -m) ]" >&2
stage "Downloading sources [ u-boot, linux-${BRANCH} ]"
stage "Compiling u-boot [ v2025.01 ]"
stage "Compiling kernel [ ${BRANCH} ]"
lines="${QUIRE_FAKE_LINES:-40}"
# At QUIRE_FAKE_RATE lines a second: a hundredth of them each hundredth of a second, paced by
# the clock (a block that came late is not waited for), so the rate holds on a busy machine.
per_tick=$(( ${QUIRE_FAKE_RATE:-0} / 100 ))
(( per_tick > 0 )) || per_tick=$lines
began=${EPOCHREALTIME/./}
tick=0
for (( first = 1; first <= lines; first += per_tick )); do
	last=$(( first + per_tick - 1 ))
	(( last > lines )) && last=$lines
	seq -f "  CC      drivers/fake/part%g.o" "$first" "$last"
	tick=$(( tick + 1 ))
	if (( last < lines )); then
		ahead=$(( began + tick * 10000 - ${EPOCHREALTIME/./} ))
		(( ahead > 0 )) && sleep "$(printf '0.%06d' "$ahead")"
	fi
done
alert warn "ccache is cold; the first build takes longer"
if [[ "$OUTCOME" == fail ]]; then
	alert err "Kernel build failed [ exit code 2 ]"
	echo "make: *** [Makefile:1234: vmlinux] Error 2" >&2
	exit 2
fi
if [[ "$OUTCOME" == hang-once ]]; then
	mkdir -p output
	if [[ ! -e output/.hung-once ]]; then
		touch output/.hung-once
		OUTCOME=hang
	fi
fi
if [[ "$OUTCOME" == hang ]]; then
	alert info "Waiting for the kernel's modules (this fake never finishes)"
	sleep "${QUIRE_FAKE_HANG_SECS:-100000}" &
	wait
fi
stage "Creating rootfs with mmdebstrap [ ${RELEASE} ]"
stage "Installing packages [ minimal=${BUILD_MINIMAL:-no} desktop=${BUILD_DESKTOP:-no} ]"
if [[ -x userpatches/customize-image.sh ]]; then
	stage "Customizing image [ userpatches/customize-image.sh ]"
	# As Armbian calls it: release, family, board, desktop, architecture.
	family=$(sed -n 's/^BOARDFAMILY="\(.*\)"/\1/p' config/boards/"${BOARD}".* 2>/dev/null | head -n 1)
	userpatches/customize-image.sh "$RELEASE" "${family}" "$BOARD" "${BUILD_DESKTOP:-no}" arm64
fi

stage "Building image [ ${ROOTFS_TYPE:-ext4}, ${IMAGE_PARTITION_TABLE:-msdos} ]"
mkdir -p output/images
variant=server
[[ "${BUILD_MINIMAL:-no}" == yes ]] && variant=minimal
[[ "${BUILD_DESKTOP:-no}" == yes ]] && variant="${DESKTOP_ENVIRONMENT:-desktop}_desktop"
name="Armbian-unofficial_26.02.0-trunk_${BOARD^}_${RELEASE}_${BRANCH}_6.12.0_${variant}.img"
image="output/images/${name}"
rm -f "${image}"*
{
	printf 'ARMBIAN FAKE IMAGE %s %s %s\n' "$BOARD" "$BRANCH" "$RELEASE"
	for f in userpatches/overlay/*; do [[ -f "$f" ]] && { echo "overlay: ${f##*/}"; cat "$f"; }; done
} > "${image}"
# Mostly zeros with some text, as a real image is mostly free space: it compresses well.
truncate -s "$((${QUIRE_FAKE_IMAGE_MB:-4} * 1024 * 1024))" "${image}"
printf 'END OF FAKE IMAGE' >> "${image}"
cat > "${image}.txt" <<-EOF
	# Armbian build information
	BOARD=${BOARD}
	BRANCH=${BRANCH}
	RELEASE=${RELEASE}
	VERSION=26.02.0-trunk
EOF

outputs="${COMPRESS_OUTPUTIMAGE:-sha,img}"
kept="${image}"
if [[ "$outputs" == *xz* ]]; then
	stage "Compressing with xz [ ${name}.xz ]"
	xz -0 -T1 -k "${image}"
	kept="${image}.xz"
elif [[ "$outputs" == *zst* ]]; then
	stage "Compressing with zstd [ ${name}.zst ]"
	zstd -q -3 "${image}" -o "${image}.zst"
	kept="${image}.zst"
fi
[[ "$kept" != "$image" && "$outputs" != *img* ]] && rm -f "${image}"
if [[ "$outputs" == *sha* ]]; then
	alert info "SHA256 calculating [ ${kept##*/} ]"
	for f in "${image}" "${image}.xz" "${image}.zst"; do
		[[ -f "$f" ]] || continue
		sha256sum -b "$f" | awk '{split($2, a, "/"); print $1, a[length(a)]}' > "$f.sha"
		[[ "$OUTCOME" == badsha ]] && echo "0000000000000000000000000000000000000000000000000000000000000000 ${f##*/}" > "$f.sha"
	done
fi
alert info "Done building image [ ${name} in $((SECONDS - started))s ]"
