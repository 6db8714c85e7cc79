/* main.c - placeholder until the CLI lands */
#include "am_base.h"
#include <stdio.h>
int main(void) { puts("amalgam"); return 0; }
