# Sourced by .ci/run and .ci/gpu: the commands CI runs are the README's, read from it.
readme_block() {  # the first ```bash block after the line <!-- ci:NAME -->
  awk -v marker="<!-- ci:$1 -->" '
    $0 == marker { found = 1; next }
    found && /^```bash/ { inside = 1; next }
    inside && /^```/ { exit }
    inside { print }' README.md
}
