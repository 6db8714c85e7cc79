/* placeholder */ typedef int am_store_placeholder;
