<?php echo "123"; ?>
