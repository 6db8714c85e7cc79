/* placeholder */ typedef int am_io_placeholder;
