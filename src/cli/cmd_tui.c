/* cmd_tui.c - `amalgam tui [--store DIR] [--frames N] [--panel NAME]` (and `amalgam` alone on a
 * terminal): the curses workbench of src/tui. */
#include "cli.h"
#include "am_base.h"
#include "tui.h"

int cmd_tui(CliArgs *a) {
    int rc, frames = 0;
    if ((rc = cli_get_int(a, "frames", 0, &frames))) return rc;
    if (frames < 0) return am_error(AM_EINVAL, "tui: --frames expects a count >= 0");
    const char *panel = cli_get(a, "panel");
    if ((rc = cli_check_unused(a))) return rc;
    if (a->npos) return am_error(AM_EINVAL, "tui: unexpected argument '%s'", a->pos[0]);
    TuiOptions o = {.store_dir = a->store_dir, .frames = frames, .panel = panel};
    return tui_main(&o);
}
