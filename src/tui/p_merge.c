/* p_merge.c - the Merge panel (placeholder until the interactive merge lands). */
#include "tui_internal.h"

#include <curses.h>

static void merge_draw(Panel *p, int y, int x, int h, int w) {
    crt_put(y + 1, x + 2, w - 4, "Interactive merging is not here yet: use amalgam merge / am.merge in the Lua console (F7).", 0);
}

const PanelClass MergePanel = {
    .name = "Merge", .id = "merge", .draw = merge_draw,
};
